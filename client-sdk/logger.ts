// The SDK's own log, off by default (`logLevel` of openTributary): what a developer wants to see
// when syncing misbehaves (connects and disconnects, client resets, refused writes, which tab
// leads), on the console, each line prefixed with the database it is about.
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };

export interface Logger {
  error(message: string, details?: unknown): void;
  warn(message: string, details?: unknown): void;
  info(message: string, details?: unknown): void;
  debug(message: string, details?: unknown): void;
}

/** Where log lines go (default: the console); tests and apps may collect them. */
export type LogSink = (level: Exclude<LogLevel, 'silent'>, message: string, details?: unknown) => void;

const consoleSink: LogSink = (level, message, details) => {
  const write = level === 'debug' ? console.debug : level === 'info' ? console.info : level === 'warn' ? console.warn : console.error;
  if (details === undefined) write(message);
  else write(message, details);
};

export function createLogger(level: LogLevel = 'silent', prefix = 'tributary', sink: LogSink = consoleSink): Logger {
  if (!(level in RANK)) throw new Error(`logLevel must be one of ${Object.keys(RANK).join(', ')}; got ${JSON.stringify(level)}`);
  const at = (l: Exclude<LogLevel, 'silent'>) => (message: string, details?: unknown) => {
    if (RANK[l] <= RANK[level]) sink(l, `[${prefix}] ${message}`, details);
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
