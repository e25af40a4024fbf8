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
  /** minimum gap between two recorded pointer-move events (≤ 4/s) */
  pointerMoveGapMs?: number;
}

export class EventLog {
  private queue: TimingEvent[] = [];
  private url: string | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastMove = -Infinity;
  private sending = false;
  private opts: Required<Omit<EventLogOptions, 'fetchFn' | 'now'>> & Pick<EventLogOptions, 'fetchFn' | 'now'>;
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
    return this.queue.length;
  }

  async flush(): Promise<void> {
    if (!this.url || this.sending || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.queue.length);
    this.sending = true;
    try {
      const f = this.opts.fetchFn ?? fetch.bind(globalThis);
      const r = await f(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': this.opts.csrfToken },
        body: JSON.stringify({ events: batch }),
      });
      if (r.status >= 500 || r.status === 429) throw new Error(String(r.status));
      if (r.ok) this.sent += batch.length;
    } catch {
      this.queue.unshift(...batch); // keep for the next try
    } finally {
      this.sending = false;
    }
  }

  /** pagehide: hand the rest to sendBeacon (form with `events` and `csrfmiddlewaretoken`). */
  beacon(): boolean {
    if (!this.url || this.queue.length === 0) return false;
    const form = new FormData();
    form.append('events', JSON.stringify(this.queue));
    form.append('csrfmiddlewaretoken', this.opts.csrfToken);
    const ok = typeof navigator !== 'undefined' && navigator.sendBeacon ? navigator.sendBeacon(this.url, form) : false;
    if (ok) this.queue = [];
    return ok;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
