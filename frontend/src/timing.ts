/** Interaction events for timing (docs/DELINEATION.md "Interaction events"). */
export type EventKind =
  | 'open' | 'pointer' | 'wheel' | 'key' | 'edit' | 'visibility' | 'focus' | 'blur' | 'pause' | 'resume' | 'close';

export interface TimingEvent {
  t: number;
  kind: EventKind;
  detail: Record<string, unknown>;
}

export interface EventLogOptions {
  csrfToken: string;
  intervalMs?: number;
  fetchFn?: typeof fetch;
  now?: () => number;
  uuid?: () => string;
  /** minimum gap between two recorded pointer-move events (≤ 4/s) */
  pointerMoveGapMs?: number;
}

/** A batch sent (or being sent) with its id: a retry resends exactly these events with the same X-Event-Batch,
 * so the server stores them once even if the answer to an earlier try was lost. */
interface PendingBatch {
  id: string;
  events: TimingEvent[];
}

export class EventLog {
  private queue: TimingEvent[] = [];
  private pending: PendingBatch | null = null;
  private url: string | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastMove = -Infinity;
  private sending = false;
  private opts: Required<Omit<EventLogOptions, 'fetchFn' | 'now' | 'uuid'>> & Pick<EventLogOptions, 'fetchFn' | 'now' | 'uuid'>;
  sent = 0;

  constructor(options: EventLogOptions) {
    this.opts = { intervalMs: 5000, pointerMoveGapMs: 250, ...options };
  }

  now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }

  /** Start sending to the session's events URL (events recorded before are kept and sent). */
  start(url: string): void {
    this.url = url;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.flush(), this.opts.intervalMs);
  }

  record(kind: EventKind, detail: Record<string, unknown> = {}): void {
    this.queue.push({ t: Math.round(this.now() * 10) / 10, kind, detail });
  }

  /** Pointer move: recorded at most every pointerMoveGapMs. Returns whether it was recorded. */
  pointerMove(detail: Record<string, unknown> = {}): boolean {
    const t = this.now();
    if (t - this.lastMove < this.opts.pointerMoveGapMs) return false;
    this.lastMove = t;
    this.record('pointer', { type: 'move', ...detail });
    return true;
  }

  pendingCount(): number {
    return this.queue.length + (this.pending?.events.length ?? 0);
  }

  private uuid(): string {
    return this.opts.uuid ? this.opts.uuid() : crypto.randomUUID();
  }

  async flush(): Promise<void> {
    if (!this.url || this.sending) return;
    if (!this.pending) {
      if (this.queue.length === 0) return;
      this.pending = { id: this.uuid(), events: this.queue.splice(0, this.queue.length) };
    }
    const batch = this.pending;
    this.sending = true;
    try {
      const f = this.opts.fetchFn ?? fetch.bind(globalThis);
      const r = await f(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': this.opts.csrfToken, 'X-Event-Batch': batch.id },
        body: JSON.stringify({ events: batch.events }),
      });
      if (r.status >= 500 || r.status === 429) throw new Error(String(r.status));
      if (r.ok) this.sent += batch.events.length;
      this.pending = null; // stored, or refused for good (resending the same body would not help)
    } catch {
      // kept as it is: the next flush resends this batch, with its id, before any newer events
    } finally {
      this.sending = false;
    }
  }

  /** pagehide: hand the rest to sendBeacon (form with `events`, `batch_id` and `csrfmiddlewaretoken`). */
  beacon(): boolean {
    if (!this.url || typeof navigator === 'undefined' || !navigator.sendBeacon) return false;
    const send = (batch: PendingBatch): boolean => {
      const form = new FormData();
      form.append('events', JSON.stringify(batch.events));
      form.append('batch_id', batch.id);
      form.append('csrfmiddlewaretoken', this.opts.csrfToken);
      return navigator.sendBeacon(this.url as string, form);
    };
    let handed = false;
    if (this.pending && send(this.pending)) {
      this.pending = null;
      handed = true;
    }
    if (this.queue.length && send({ id: this.uuid(), events: this.queue })) {
      this.queue = [];
      handed = true;
    }
    return handed && this.pendingCount() === 0;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
