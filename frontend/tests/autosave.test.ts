import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Autosaver, type SaveState } from '../src/autosave';
import { EventLog } from '../src/timing';

type Call = { url: string; headers: Record<string, string>; keepalive?: boolean };

function setup(responses: Array<() => Response | Promise<Response>>) {
  const calls: Call[] = [];
  const states: Array<[SaveState, number]> = [];
  let n = 0;
  const fetchFn = vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, headers: init.headers as Record<string, string>, keepalive: init.keepalive });
    const r = responses[Math.min(n++, responses.length - 1)];
    return r();
  }) as unknown as typeof fetch;
  let id = 0;
  const saver = new Autosaver({
    url: '/v/', csrfToken: 'tok', baseVersion: 0, encode: async () => new Uint8Array([1]),
    encodeSync: () => new Uint8Array([2]), sessionId: () => '7', fetchFn, uuid: () => `id-${++id}`,
    onState: (s, info) => states.push([s, info.version]), debounceMs: 100, minIntervalMs: 0, retryDelaysMs: [50, 100],
    now: () => Date.now(),
  });
  return { saver, calls, states };
}

const created = (number: number) => () => new Response(JSON.stringify({ number }), { status: 201 });

describe('Autosaver', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('debounces changes into one save and takes the returned version as base', async () => {
    const { saver, calls, states } = setup([created(1), created(2)]);
    saver.markDirty();
    saver.markDirty();
    expect(saver.state).toBe('dirty');
    await vi.advanceTimersByTimeAsync(150);
    expect(calls).toHaveLength(1);
    expect(calls[0].headers['X-Base-Version']).toBe('0');
    expect(calls[0].headers['X-Session']).toBe('7');
    expect(saver.baseVersion).toBe(1);
    expect(states.at(-1)).toEqual(['saved', 1]);
    saver.markDirty();
    await vi.advanceTimersByTimeAsync(150);
    expect(calls[1].headers['X-Base-Version']).toBe('1');
    expect(calls[1].headers['X-Save-Id']).not.toBe(calls[0].headers['X-Save-Id']);
  });

  it('retries a failed save with the same save id', async () => {
    const { saver, calls } = setup([
      () => Promise.reject(new TypeError('offline')), () => new Response('', { status: 502 }), created(4),
    ]);
    saver.markDirty();
    await vi.advanceTimersByTimeAsync(120);
    expect(saver.state).toBe('error');
    await vi.advanceTimersByTimeAsync(200);
    await vi.advanceTimersByTimeAsync(200);
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.headers['X-Save-Id'])).size).toBe(1);
    expect(saver.state).toBe('saved');
    expect(saver.baseVersion).toBe(4);
  });

  it('stops on 409 stale with the conflict message', async () => {
    const { saver, calls } = setup([() => new Response(JSON.stringify({ code: 'stale' }), { status: 409 })]);
    saver.markDirty();
    await vi.advanceTimersByTimeAsync(150);
    expect(saver.state).toBe('conflict');
    expect(saver.message).toMatch(/newer version was saved elsewhere/);
    saver.markDirty();
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toHaveLength(1);
  });

  it('flush saves at once and resolves when acknowledged', async () => {
    const { saver, calls } = setup([created(3)]);
    saver.markDirty();
    await saver.flush();
    expect(calls).toHaveLength(1);
    expect(saver.state).toBe('saved');
    expect(saver.hasUnsaved()).toBe(false);
  });

  it('sends an unsaved labelmap with keepalive on pagehide', () => {
    const { saver, calls } = setup([created(1)]);
    saver.markDirty();
    expect(saver.saveOnPageHide()).toBe(true);
    expect(calls[0].keepalive).toBe(true);
  });
});

describe('EventLog', () => {
  it('throttles pointer moves to 4/s and batches', async () => {
    let t = 0;
    const bodies: string[] = [];
    const log = new EventLog({
      csrfToken: 'x', now: () => t,
      fetchFn: (async (_u: string, init: RequestInit) => {
        bodies.push(init.body as string);
        return new Response('{}', { status: 202 });
      }) as unknown as typeof fetch,
    });
    for (t = 0; t < 1000; t += 10) log.pointerMove();
    expect(log.pendingCount()).toBe(4);
    log.record('key', { key: 'b' });
    log.start('/s/1/events/');
    await log.flush();
    log.stop();
    const sent = JSON.parse(bodies[0]).events;
    expect(sent).toHaveLength(5);
    expect(sent[4]).toMatchObject({ kind: 'key', detail: { key: 'b' } });
  });

  it('resends a failed batch with the same id and events, newer events in the next batch', async () => {
    let t = 0;
    let fail = true;
    const calls: { id: string; events: { t: number }[] }[] = [];
    let n = 0;
    const log = new EventLog({
      csrfToken: 'x', now: () => t, uuid: () => `id-${++n}`,
      fetchFn: (async (_u: string, init: RequestInit) => {
        const headers = init.headers as Record<string, string>;
        calls.push({ id: headers['X-Event-Batch'], events: JSON.parse(init.body as string).events });
        if (fail) throw new TypeError('network down');
        return new Response('{}', { status: 202 });
      }) as unknown as typeof fetch,
    });
    log.start('/s/1/events/');
    t = 1; log.record('edit');
    t = 2; log.record('edit');
    await log.flush(); // lost
    t = 3; log.record('key');
    expect(log.pendingCount()).toBe(3);
    fail = false;
    await log.flush(); // the same batch again
    await log.flush(); // then the newer event
    log.stop();
    expect(calls.map((c) => c.id)).toEqual(['id-1', 'id-1', 'id-2']);
    expect(calls[1].events).toEqual(calls[0].events);
    expect(calls[1].events.map((e) => e.t)).toEqual([1, 2]);
    expect(calls[2].events.map((e) => e.t)).toEqual([3]);
    expect(log.pendingCount()).toBe(0);
    expect(log.sent).toBe(3);
  });
});
