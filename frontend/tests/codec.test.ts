import { describe, expect, it } from 'vitest';
import { inflateSync, deflateSync } from 'node:zlib';
import {
  countLabels, decodeLabelmap, decodeUint8Volume, encodeLabelmap, flipZ, labelmapDigest, rleDecode, rleEncode,
  type Shape,
} from '../src/codec';
import { adler32, zlibStoredSync } from '../src/zlibSync';

function pairs(bytes: Uint8Array): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 4 }, (_, i) => v.getUint32(i * 4, true));
}

describe('RLE', () => {
  it('encodes maximal runs as little-endian uint32 pairs', () => {
    const data = Uint8Array.from([0, 0, 0, 1, 1, 2, 0]);
    expect(pairs(rleEncode(data))).toEqual([3, 0, 2, 1, 1, 2, 1, 0]);
  });
  it('encodes an all-zero grid as one run', () => {
    expect(pairs(rleEncode(new Uint8Array(1000)))).toEqual([1000, 0]);
  });
  it('round-trips', () => {
    const data = new Uint8Array(5000).map((_, i) => (i % 97 < 30 ? 0 : i % 3 === 0 ? 2 : 1));
    expect(rleDecode(rleEncode(data), data.length)).toEqual(data);
  });
  it('skips whole words inside long runs and still matches a voxel-by-voxel encoder, aligned or not', () => {
    const naive = (d: Uint8Array) => {
      const out: number[] = [];
      let start = 0;
      for (let i = 1; i <= d.length; i++) if (i === d.length || d[i] !== d[start]) { out.push(i - start, d[start]); start = i; }
      return out;
    };
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const backing = new Uint8Array(40_003);
    for (let i = 0; i < backing.length; ) {
      const run = 1 + Math.floor(random() * (random() < 0.5 ? 3 : 900));
      backing.fill(random() < 0.6 ? 0 : 1 + Math.floor(random() * 2), i, i + run);
      i += run;
    }
    for (const offset of [0, 1, 2, 3]) {
      const view = backing.subarray(offset, backing.length - (3 - offset));
      expect(pairs(rleEncode(view))).toEqual(naive(view));
    }
  });
  it('refuses runs that do not cover the grid', () => {
    const body = rleEncode(new Uint8Array(10));
    expect(() => rleDecode(body, 11)).toThrow(/cover/);
    expect(() => rleDecode(body, 9)).toThrow(/longer/);
    expect(() => rleDecode(new Uint8Array(8), 1)).toThrow(/empty/);
  });
});

describe('wire labelmap', () => {
  const shape: Shape = [3, 2, 4];
  const server = Uint8Array.from({ length: 24 }, (_, i) => (i >= 8 && i < 12 ? 1 : i === 23 ? 2 : 0));

  it('is zlib (RFC 1950) a Python reader can inflate', async () => {
    const body = await encodeLabelmap(server, shape, false);
    expect(body[0]).toBe(0x78);
    expect(pairs(new Uint8Array(inflateSync(body)))).toEqual([8, 0, 4, 1, 11, 0, 1, 2]);
  });

  it('decodes what zlib.compress makes', async () => {
    const body = new Uint8Array(deflateSync(rleEncode(server)));
    expect(await decodeLabelmap(body, shape, false)).toEqual(server);
  });

  it('flips z when the viewer volume is reversed', async () => {
    const viewer = flipZ(server, shape, true);
    expect(Array.from(viewer.subarray(0, 8))).toEqual(Array.from(server.subarray(16, 24)));
    const body = await encodeLabelmap(viewer, shape, true);
    expect(pairs(new Uint8Array(inflateSync(body)))).toEqual([8, 0, 4, 1, 11, 0, 1, 2]);
    expect(await decodeLabelmap(body, shape, true)).toEqual(viewer);
    expect(flipZ(viewer, shape, true)).toEqual(server);
  });

  it('refuses a labelmap of the wrong size', async () => {
    await expect(encodeLabelmap(new Uint8Array(5), shape, false)).rejects.toThrow(/grid/);
  });

  it('decodes uncertainty levels', async () => {
    const levels = Uint8Array.from({ length: 24 }, (_, i) => i * 10);
    const got = await decodeUint8Volume(new Uint8Array(deflateSync(levels)), shape, true);
    expect(got).toEqual(flipZ(levels, shape, true));
  });
});

describe('digest', () => {
  it('weights by the server flat index, whatever the viewer order', () => {
    const shape: Shape = [2, 1, 3];
    const server = Uint8Array.from([0, 1, 0, 2, 0, 1]);
    const expected = { nonzero: 3, weighted: 1 * 1 + 3 * 2 + 5 * 1 };
    expect(labelmapDigest(server, shape, false)).toEqual(expected);
    expect(labelmapDigest(flipZ(server, shape, true), shape, true)).toEqual(expected);
  });
  it('wraps modulo 2**32', () => {
    const shape: Shape = [1, 1, 70000];
    const d = new Uint8Array(70000).fill(2);
    let w = 0n;
    for (let i = 0n; i < 70000n; i++) w += i * 2n;
    expect(labelmapDigest(d, shape, false).weighted).toBe(Number(w % 4294967296n));
  });
  it('counts labels', () => {
    expect(countLabels(Uint8Array.from([0, 1, 1, 2]), 2)).toEqual([1, 2, 1]);
  });
});

describe('stored zlib (pagehide)', () => {
  it('is valid zlib for small and multi-block inputs', () => {
    for (const n of [0, 1, 1000, 65536, 140000]) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 31) & 0xff);
      expect(new Uint8Array(inflateSync(zlibStoredSync(data)))).toEqual(data);
    }
  });
  it('computes adler32', () => {
    expect(adler32(new TextEncoder().encode('Wikipedia'))).toBe(0x11e60398);
  });
});
