/**
 * Worker-thread side of DataLoader (./pipeline.ts): holds the case cache and builds batches ahead of
 * the consumer. The main thread grants one credit per batch it takes, so at most `prefetch` batches
 * wait in memory. Batches are built one at a time, in order, and their buffers are transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../errors';
import { batchBuffers, BatchProducer, FromWorker, ToWorker, WorkerInit } from './pipeline';

const port = parentPort!;
const init = workerData as WorkerInit;
const producer = new BatchProducer(init.dataset, init.cases, init.options);

interface Run {
  token: number;
  epoch: number;
  plan: number[][];
  next: number;
  credits: number;
  cancelled: boolean;
}

let run: Run | null = null;
let busy = false;
let closing = false;

const send = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

async function pump(): Promise<void> {
  if (busy) return;
  busy = true;
  let r: Run | null = null;
  try {
    while (run && !run.cancelled && !closing && run.credits > 0 && run.next < run.plan.length) {
      r = run;
      r.credits--;
      const batch = await producer.make(r.epoch, r.plan[r.next++]);
      if (r.cancelled || closing) break;
      send({ type: 'batch', token: r.token, batch, last: r.next === r.plan.length }, batchBuffers(batch));
    }
  } catch (err) {
    if (r) {
      const e = err as Error;
      send({ type: 'error', token: r.token, message: e.message, user: err instanceof UserError, stack: e.stack });
      r.cancelled = true;
    }
  } finally {
    busy = false;
  }
  if (closing) port.close();
  else if (run && !run.cancelled && run.credits > 0 && run.next < run.plan.length) void pump();
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'epoch': {
      if (run) run.cancelled = true;
      const plan = producer.plan(msg.epoch);
      run = { token: msg.token, epoch: msg.epoch, plan, next: 0, credits: msg.credits, cancelled: false };
      if (plan.length === 0) send({ type: 'end', token: msg.token });
      break;
    }
    case 'credit':
      if (run && run.token === msg.token) run.credits++;
      break;
    case 'cancel':
      if (run && run.token === msg.token) run.cancelled = true;
      break;
    case 'close':
      closing = true;
      if (!busy) port.close();
      return;
  }
  void pump();
});
