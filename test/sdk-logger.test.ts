// The SDK's log (logLevel): silent by default, and at 'info' it says what the socket does.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, type LogLevel } from '../client-sdk/logger.ts';
import { cleanup, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('SDK logger', () => {
  it('writes what its level lets through, and refuses an unknown level', () => {
    const lines: string[] = [];
    const log = createLogger('warn', 'db', (level, message) => lines.push(`${level} ${message}`));
    log.error('e');
    log.warn('w');
    log.info('i');
    log.debug('d');
    expect(lines).toEqual(['error [db] e', 'warn [db] w']);
    const silent: string[] = [];
    const quiet = createLogger(undefined, 'db', (_level, message) => silent.push(message));
    quiet.error('nothing');
    expect(silent).toEqual([]);
    expect(() => createLogger('verbose' as LogLevel)).toThrow(/logLevel must be one of silent, error, warn, info, debug; got "verbose"/);
  });

  it('logs the connection at info, and nothing by default', async () => {
    const gateway = await startTestGateway();
    const lines: string[] = [];
    const client = await openTestClient(gateway.wsUrl, { logLevel: 'info', logSink: (level, message) => lines.push(`${level} ${message}`) });
    await client.waitForSync();
    await waitFor('a connected line', () => lines.some((l) => /^info \[client_\w+\] connection: connected$/.test(l)));
    await client.close();
    expect(lines.at(-1)).toMatch(/connection: closed$/);

    const quiet: string[] = [];
    const silent = await openTestClient(gateway.wsUrl, { logSink: (_level, message) => quiet.push(message) });
    await silent.waitForSync();
    expect(silent.connectionState).toBe('connected');
    expect(quiet).toEqual([]);
  });
});
