// The echo of a device's own write that reaches it only after a later write of its was
// acknowledged: RxDB would write the older state over the newer one (until the later echo
// comes), and a write made in between would build on it, losing an increment. Seen in the demo
// in Chromium under load; here the stream's messages are held back to make it certain.
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

/** A `ws` socket whose stream messages (`streamTasks`) wait in a queue while `held` is set. */
function holdingSocket() {
  const queue: Array<() => void> = [];
  const control = { held: false, queue, release: (n = queue.length) => queue.splice(0, n).forEach((deliver) => deliver()) };
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  class HoldingWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      // graphql-ws listens through `onmessage`.
      Object.defineProperty(this, 'onmessage', {
        get: () => onmessage.get!.call(this),
        set: (listener: ((event: WebSocket.MessageEvent) => void) | null) =>
          onmessage.set!.call(this, listener && ((event: WebSocket.MessageEvent) => (control.held && String(event.data).includes('"streamTasks"') ? queue.push(() => listener(event)) : listener(event)))),
      });
    }
  }
  return { HoldingWebSocket, control };
}

describe('an echo older than an acknowledged write', () => {
  it('does not undo that write, and an increment made after it counts', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const { HoldingWebSocket, control } = holdingSocket();
    const device = await openTestClient(gateway.wsUrl, { webSocketImpl: HoldingWebSocket });
    const tasks = device.collections.tasks!;
    const task = newTask({ title: 'Write docs', minutesLogged: 0 });
    await tasks.insert(task);
    await waitFor('the insert lands', () => syncedDocument(db, 'tasks', task.id));
    await device.waitForSync();
    const minutes = async () => (await tasks.findOne(task.id).exec())!.minutesLogged as number;

    control.held = true;
    await (await tasks.findOne(task.id).exec())!.incrementalPatch({ title: 'Write the launch docs' });
    await waitFor('the title is acknowledged', async () => (await syncedDocument(db, 'tasks', task.id))?.title === 'Write the launch docs');
    await (await tasks.findOne(task.id).exec())!.incrementalModify((t) => ({ ...t, minutesLogged: (t.minutesLogged as number) + 15 }));
    await waitFor('the increment is acknowledged', async () => (await syncedDocument(db, 'tasks', task.id))?.minutesLogged === 15);
    await waitFor('both echoes are held', () => control.queue.length >= 2);

    // The title's echo (minutes 0) arrives now, alone.
    control.held = false;
    control.release(1);
    await new Promise((r) => setTimeout(r, 500)); // the SDK pulls from what it received
    expect(await minutes()).toBe(15);
    await (await tasks.findOne(task.id).exec())!.incrementalModify((t) => ({ ...t, minutesLogged: (t.minutesLogged as number) + 15 }));
    control.release();
    await waitFor('the second increment lands', async () => (await syncedDocument(db, 'tasks', task.id))?.minutesLogged === 30);
    await device.waitForSync();
    expect(await minutes()).toBe(30);
  });
});
