// Several gateway processes on one database behind nginx, run with deploy/nginx.conf itself
// (its listen port and upstream servers replaced, one worker in the foreground), on loopback. Each instance is a real
// `gateway/main.ts` process: it can be killed (-9), stopped with SIGTERM (drain) and started again.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from '../../gateway/store/embedded-ferretdb.ts';
import { mongoUri, onCleanup, rulesFixture, TEST_JWT, uniqueName, waitFor } from './harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

export interface ClusterOptions {
  instances: number;
  /** More environment for every instance (TRIBUTARY_*). */
  env?: Record<string, string>;
}

export class Cluster {
  private readonly children: Array<ChildProcess | null>;
  private balancer: ChildProcess | null = null;

  private constructor(
    readonly database: string,
    readonly ports: number[],
    readonly balancerPort: number,
    private readonly prefix: string,
    private readonly env: Record<string, string>,
  ) {
    this.children = ports.map(() => null);
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const ports = await Promise.all(Array.from({ length: options.instances }, () => freePort()));
    const prefix = mkdtempSync(join(tmpdir(), 'tributary-nginx-'));
    const cluster = new Cluster(uniqueName('cluster'), ports, await freePort(), prefix, options.env ?? {});
    onCleanup(() => cluster.stop());
    await Promise.all(ports.map((_, i) => cluster.startInstance(i)));
    await cluster.startBalancer();
    return cluster;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.balancerPort}/graphql`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.balancerPort}/graphql`;
  }

  instanceUrl(i: number): string {
    return `http://127.0.0.1:${this.ports[i]}/graphql`;
  }

  /** Resident memory of instance `i` now, in bytes (Linux). */
  async rss(i: number): Promise<number> {
    const pid = this.children[i]?.pid;
    if (!pid) return 0;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  }

  running(i: number): boolean {
    return this.children[i] !== null;
  }

  async startInstance(i: number): Promise<void> {
    if (this.children[i]) throw new Error(`instance ${i} is running`);
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        MONGODB_URI: mongoUri(),
        TRIBUTARY_DATABASE: this.database,
        PORT: String(this.ports[i]),
        LOG_LEVEL: 'warn',
        TRIBUTARY_JWT_SECRET: TEST_JWT.secret,
        TRIBUTARY_JWT_ISSUER: TEST_JWT.issuer,
        TRIBUTARY_JWT_AUDIENCE: TEST_JWT.audience,
        TRIBUTARY_RULES: rulesFixture('open'),
        ...this.env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.children[i] = child;
    child.once('exit', () => {
      if (this.children[i] === child) this.children[i] = null;
    });
    await waitFor(`instance ${i} ready`, async () => {
      if (this.children[i] !== child) throw new Error(`instance ${i} exited while starting`);
      return (await fetch(`http://127.0.0.1:${this.ports[i]}/ready`)).ok;
    }, 60_000);
  }

  /** Sends `signal` and waits for the process to exit (SIGTERM: after its drain). */
  async signal(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.children[i];
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((_, i) => this.signal(i, 'SIGKILL')));
    const balancer = this.balancer;
    this.balancer = null;
    if (balancer && balancer.exitCode === null) {
      const exited = new Promise((r) => balancer.once('exit', r));
      balancer.kill('SIGTERM');
      await exited;
    }
    rmSync(this.prefix, { recursive: true, force: true });
  }

  private async startBalancer(): Promise<void> {
    const shipped = readFileSync(resolve(ROOT, 'deploy/nginx.conf'), 'utf8');
    const servers = this.ports.map((port) => `    server 127.0.0.1:${port} max_fails=0;`).join('\n');
    const config = shipped
      .replace(/^\s*listen 127\.0\.0\.1:8080;$/m, `    listen 127.0.0.1:${this.balancerPort};`)
      .replace(/(?:^\s*server 127\.0\.0\.1:400\d [^\n]*\n)+/m, `${servers}\n`)
      // In the foreground, a child of the test: it goes when the test does. (Its warnings of
      // connections refused by the instances the tests kill would drown the test output.)
      .replace(/^worker_processes auto;$/m, 'worker_processes 1;\ndaemon off;')
      .replace(/^error_log stderr warn;$/m, 'error_log stderr crit;');
    if (!config.includes(`:${this.balancerPort};`) || !config.includes(`:${this.ports.at(-1)} `)) throw new Error('deploy/nginx.conf no longer has the lines the tests replace');
    mkdirSync(join(this.prefix, 'temp'));
    const path = join(this.prefix, 'nginx.conf');
    writeFileSync(path, config);
    const balancer = spawn(NGINX, ['-p', this.prefix, '-c', path, '-e', 'stderr'], { stdio: ['ignore', 'inherit', 'inherit'] });
    this.balancer = balancer;
    await waitFor('nginx listening', async () => {
      if (balancer.exitCode !== null) throw new Error(`nginx exited (${balancer.exitCode})`);
      return (await fetch(`http://127.0.0.1:${this.balancerPort}/ready`)).ok;
    }, 20_000);
  }
}
