/**
 * Wire encoding of a labelmap (docs/DELINEATION.md): zlib (RFC 1950, CompressionStream('deflate')) of a
 * little-endian uint32 array of [run_length, value] pairs covering z*y*x voxels in C order (z, y, x), z in the
 * server's slice order. Pure functions, unit-tested in Node (tests/codec.test.ts).
 */

/**
 * Run-length encode voxel values into [run, value, run, value, ...] (little-endian uint32).
 * A labelmap is mostly long runs (background), so inside a run whole 4-voxel words equal to the run's value
 * are skipped at once: ~10 ms instead of ~150 ms for a 512×512×150 grid holding a GTV.
 */
export function rleEncode(data: Uint8Array): Uint8Array {
  const n = data.length;
  const runs: number[] = [];
  if (n === 0) return new Uint8Array(0);
  const aligned = data.byteOffset % 4 === 0;
  const words = aligned ? new Uint32Array(data.buffer, data.byteOffset, n >>> 2) : null;
  let start = 0;
  let value = data[0];
  let repeated = Math.imul(value, 0x01010101) >>> 0;
  let i = 1;
  while (i < n) {
    if (words !== null && (i & 3) === 0) {
      let w = i >>> 2;
      while (w < words.length && words[w] === repeated) w++;
      i = w << 2;
      if (i >= n) break;
    }
    const v = data[i];
    if (v !== value) {
      runs.push(i - start, value);
      start = i;
      value = v;
      repeated = Math.imul(value, 0x01010101) >>> 0;
    }
    i++;
  }
  runs.push(n - start, value);
  return toLittleEndianBytes(Uint32Array.from(runs));
}

/** Decode runs into `target` (length = voxel count). Throws when the runs do not cover the grid exactly. */
export function rleDecodeInto(bytes: Uint8Array, target: { length: number; [i: number]: number }): void {
  if (bytes.byteLength % 8 !== 0) throw new Error(`labelmap runs: ${bytes.byteLength} bytes is not a whole number of pairs`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  for (let off = 0; off < bytes.byteLength; off += 8) {
    const run = view.getUint32(off, true);
    const value = view.getUint32(off + 4, true);
    if (run === 0) throw new Error('labelmap runs: empty run');
    if (pos + run > target.length) throw new Error('labelmap runs: longer than the grid');
    if (target instanceof Uint8Array) target.fill(value, pos, pos + run);
    else for (let i = pos; i < pos + run; i++) target[i] = value;
    pos += run;
  }
  if (pos !== target.length) throw new Error(`labelmap runs cover ${pos} voxels, the grid has ${target.length}`);
}

export function rleDecode(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  rleDecodeInto(bytes, out);
  return out;
}

function toLittleEndianBytes(words: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
  return bytes;
}

async function pipeThrough(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const blob = new Blob([bytes as BlobPart]);
  const buf = await new Response(blob.stream().pipeThrough(stream)).arrayBuffer();
  return new Uint8Array(buf);
}

/** zlib (RFC 1950) compress. */
export function zlibCompress(bytes: Uint8Array): Promise<Uint8Array> {
  return pipeThrough(bytes, new CompressionStream('deflate'));
}

/** zlib (RFC 1950) decompress. */
export function zlibDecompress(bytes: Uint8Array): Promise<Uint8Array> {
  return pipeThrough(bytes, new DecompressionStream('deflate'));
}

/** Grid shape in server order [z, y, x]. */
export type Shape = [number, number, number];

/**
 * Reorder slices between the viewer's volume order and the server order. When `flip` is false the data is
 * returned as is (no copy); otherwise a copy with slice k and slice z-1-k swapped. Its own inverse.
 */
export function flipZ<T extends Uint8Array | Float32Array>(data: T, shape: Shape, flip: boolean): T {
  if (!flip) return data;
  const [z, y, x] = shape;
  const slice = y * x;
  const out = new (data.constructor as { new (n: number): T })(data.length);
  for (let k = 0; k < z; k++) out.set(data.subarray(k * slice, (k + 1) * slice), (z - 1 - k) * slice);
  return out;
}

/** Encode voxel data held in viewer order to the wire body. */
export async function encodeLabelmap(viewerData: Uint8Array, shape: Shape, flip: boolean): Promise<Uint8Array> {
  checkLength(viewerData.length, shape);
  return zlibCompress(rleEncode(flipZ(viewerData, shape, flip)));
}

/** Decode a wire body to voxel data in viewer order. */
export async function decodeLabelmap(body: Uint8Array, shape: Shape, flip: boolean): Promise<Uint8Array> {
  const raw = await zlibDecompress(body);
  return flipZ(rleDecode(raw, shape[0] * shape[1] * shape[2]), shape, flip);
}

/** Decode the uncertainty map: zlib of uint8 levels in server order. */
export async function decodeUint8Volume(body: Uint8Array, shape: Shape, flip: boolean): Promise<Uint8Array> {
  const raw = await zlibDecompress(body);
  checkLength(raw.length, shape);
  return flipZ(raw, shape, flip);
}

function checkLength(n: number, shape: Shape): void {
  const want = shape[0] * shape[1] * shape[2];
  if (n !== want) throw new Error(`labelmap has ${n} voxels, the grid ${shape.join('x')} has ${want}`);
}

/**
 * Digest for tests: nonzero = voxels != 0; weighted = sum over voxels != 0 of (flat index in SERVER order * value)
 * mod 2**32. `viewerData` is in viewer order; `flip` says whether viewer order is the reverse of server order.
 */
export function labelmapDigest(viewerData: ArrayLike<number>, shape: Shape, flip: boolean): { nonzero: number; weighted: number } {
  const [z, y, x] = shape;
  const slice = y * x;
  const MOD = 4294967296;
  let nonzero = 0;
  let weighted = 0;
  for (let k = 0; k < z; k++) {
    const serverK = flip ? z - 1 - k : k;
    const base = k * slice;
    const serverBase = serverK * slice;
    for (let i = 0; i < slice; i++) {
      const v = viewerData[base + i];
      if (v !== 0) {
        nonzero++;
        weighted = (weighted + ((serverBase + i) * v) % MOD) % MOD;
      }
    }
  }
  return { nonzero, weighted };
}

/** Voxels per segment value (index 0 = background). */
export function countLabels(data: ArrayLike<number>, maxLabel = 255): number[] {
  const counts = new Array<number>(maxLabel + 1).fill(0);
  for (let i = 0; i < data.length; i++) counts[data[i]]++;
  return counts;
}
