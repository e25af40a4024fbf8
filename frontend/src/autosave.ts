/**
 * Autosave of the labelmap (docs/DELINEATION.md, POST versions/). Debounced; one save in flight at a time; a
 * retry of a failed save reuses its X-Save-Id and body; 409 stops autosaving (conflict or locked).
 */
export type SaveState = 'saved' | 'saving' | 'dirty' | 'error' | 'conflict';

export interface AutosaverOptions {
  url: string;
  csrfToken: string;
  baseVersion: number;
  /** Encode the current labelmap (async; CompressionStream). */
  encode: () => Promise<Uint8Array>;
  /** Encode synchronously for pagehide (stored zlib). */
  encodeSync: () => Uint8Array;
  sessionId: () => string | null;
  onState: (state: SaveState, info: { version: number; message?: string }) => void;
  debounceMs?: number;
  minIntervalMs?: number;
  fetchFn?: typeof fetch;
  uuid?: () => string;
  now?: () => number;
  retryDelaysMs?: number[];
}

interface PendingSave {
  saveId: string;
  body: Uint8Array;
  base: number;
  attempt: number;
}

export class Autosaver {
  state: SaveState = 'saved';
  baseVersion: number;
  message = '';
  private opts: Required<Omit<AutosaverOptions, 'fetchFn' | 'uuid' | 'now'>> & Pick<AutosaverOptions, 'fetchFn' | 'uuid' | 'now'>;
  private dirty = false;
  private generation = 0; // bumped on every change
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight: Promise<void> | null = null;
  private pending: PendingSave | null = null; // a save that failed and waits for its retry
  private lastStart = -Infinity;
  private stopped = false;
  private waiters: Array<() => void> = [];

  constructor(options: AutosaverOptions) {
    this.opts = { debounceMs: 2000, minIntervalMs: 2500, retryDelaysMs: [1000, 2000, 4000, 8000, 15000, 30000], ...options };
    this.baseVersion = options.baseVersion;
  }

  private get fetchFn(): typeof fetch {
    return this.opts.fetchFn ?? fetch.bind(globalThis);
  }
  private uuid(): string {
    return this.opts.uuid ? this.opts.uuid() : crypto.randomUUID();
  }
  private now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }

  private setState(state: SaveState, message = ''): void {
    this.state = state;
    this.message = message;
    this.opts.onState(state, { version: this.baseVersion, message });
    if (state === 'saved' || state === 'conflict' || (state === 'error' && !this.pending)) this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Stop autosaving for good (conflict, lock, submission). */
  stop(state?: SaveState, message?: string): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (state) this.setState(state, message);
    this.wake();
  }

  /** The labelmap changed. */
  markDirty(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.generation++;
    if (this.state !== 'saving' && this.state !== 'error') this.setState('dirty');
    this.schedule(this.opts.debounceMs);
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const sinceLast = this.now() - this.lastStart;
    const wait = Math.max(delay, this.opts.minIntervalMs - sinceLast, 0);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, wait);
  }

  /** Save now (if anything is unsaved) and resolve when the labelmap is acknowledged, or saving stopped/failed. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    for (let guard = 0; guard < 20 && !this.stopped; guard++) {
      if (this.inFlight) {
        await this.inFlight;
        continue;
      }
      if (!this.dirty && !this.pending) return;
      await this.run(true);
      if (this.state === 'error') return;
    }
  }

  private async run(immediate = false): Promise<void> {
    if (this.stopped) return;
    if (this.inFlight) {
      // changed while a save is in flight: run again afterwards
      await this.inFlight;
      if (!immediate) return;
    }
    if (!this.dirty && !this.pending) return;
    let save = this.pending;
    if (!save) {
      const generation = this.generation;
      const body = await this.opts.encode();
      this.dirty = this.generation !== generation;
      save = { saveId: this.uuid(), body, base: this.baseVersion, attempt: 0 };
    } // else: a failed save is waiting; retry it unchanged (same X-Save-Id), newer changes follow
    this.pending = save;
    this.lastStart = this.now();
    this.inFlight = this.send(save).finally(() => {
      this.inFlight = null;
    });
    await this.inFlight;
  }

  private async send(save: PendingSave): Promise<void> {
    this.setState('saving');
    let response: Response;
    try {
      response = await this.fetchFn(this.opts.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: this.headers(save),
        body: save.body as BodyInit,
      });
    } catch (err) {
      this.retryLater(save, `network error: ${(err as Error).message ?? err}`);
      return;
    }
    if (response.status === 200 || response.status === 201) {
      let number = this.baseVersion;
      try {
        const data = await response.json();
        number = Number(data.number);
      } catch {
        /* keep */
      }
      this.baseVersion = number;
      this.pending = null;
      if (this.dirty) {
        this.setState('dirty');
        this.schedule(0);
      } else {
        this.setState('saved');
      }
      return;
    }
    if (response.status === 409) {
      let data: { code?: string; detail?: string } = {};
      try {
        data = await response.json();
      } catch {
        /* empty */
      }
      this.pending = null;
      const message =
        data.code === 'locked'
          ? 'This case has been submitted and is locked — nothing more is saved.'
          : 'A newer version was saved elsewhere (another tab?) — reload to continue';
      this.stop('conflict', message);
      return;
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      this.retryLater(save, `server error ${response.status}`);
      return;
    }
    // 400/403/404: retrying the same body will not help
    let detail = '';
    try {
      detail = JSON.stringify(await response.json());
    } catch {
      /* empty */
    }
    this.pending = null;
    this.setState('error', `save refused (${response.status}) ${detail}`);
  }

  private retryLater(save: PendingSave, message: string): void {
    const delays = this.opts.retryDelaysMs;
    const delay = delays[Math.min(save.attempt, delays.length - 1)];
    save.attempt++;
    this.pending = save;
    this.setState('error', `${message}; retrying in ${Math.round(delay / 1000)} s`);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, delay);
  }

  private headers(save: PendingSave): Record<string, string> {
    const h: Record<string, string> = {
      'Content-Type': 'application/vnd.contourtrial.labelmap',
      'X-CSRFToken': this.opts.csrfToken,
      'X-Base-Version': String(save.base),
      'X-Save-Id': save.saveId,
    };
    const session = this.opts.sessionId();
    if (session) h['X-Session'] = session;
    return h;
  }

  /** pagehide: hand any unsaved labelmap to the browser with keepalive (synchronous encoding). */
  saveOnPageHide(): boolean {
    if (this.stopped) return false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let save = this.pending;
    if (this.dirty || !save) {
      if (!this.dirty && !save) return false;
      if (this.inFlight && !this.dirty) return false; // the in-flight request carries everything
      save = { saveId: this.uuid(), body: this.opts.encodeSync(), base: this.baseVersion, attempt: 0 };
      if (this.inFlight) return false; // base unknown until the in-flight save answers; avoid a sure 409
    }
    try {
      void this.fetchFn(this.opts.url, {
        method: 'POST',
        credentials: 'same-origin',
        keepalive: save.body.byteLength < 60000,
        headers: this.headers(save),
        body: save.body as BodyInit,
      }).catch(() => undefined);
      return true;
    } catch {
      return false;
    }
  }

  hasUnsaved(): boolean {
    return this.dirty || !!this.pending || !!this.inFlight;
  }
}
