// The protobuf wire format by hand, for bodies and answers the tests make
// or read themselves (protobuf.test.mjs, turso_sync.test.mjs): varints and
// length-delimited fields, enough for Hrana's and Turso Sync's messages.

export function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

// Field `num` holding bytes (strings and messages alike).
export const bytesField = (num, bytes) => Buffer.concat([varint((num << 3) | 2), varint(bytes.length), Buffer.from(bytes)]);
// Field `num` holding a varint.
export const intField = (num, n) => Buffer.concat([varint(num << 3), varint(n)]);
export const msg = (...parts) => Buffer.concat(parts);

export function readVarint(buf, pos) {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [v, pos];
    shift += 7n;
  }
}

// The fields of one message: {num: [values]} (varints as BigInt, bytes as
// Buffer).
export function fields(buf) {
  const out = {};
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const num = Number(key >> 3n);
    let v;
    if ((key & 7n) === 0n) [v, pos] = readVarint(buf, pos);
    else if ((key & 7n) === 2n) {
      let len;
      [len, pos] = readVarint(buf, pos);
      v = buf.subarray(pos, pos + Number(len));
      pos += Number(len);
    } else throw new Error(`wire type ${key & 7n}`);
    (out[num] ??= []).push(v);
  }
  return out;
}
