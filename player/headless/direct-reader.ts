/**
 * A big title's ciphertext read past the page cache (O_DIRECT) while the player decrypts it. The
 * title was written past it (direct-writer.ts), so a buffered read of a fresh download fills new
 * page cache as it goes: on this project's VMs the terminal's reads cost 2.1-2.6 ms of CPU per MiB
 * in the bench's first decrypt pass, and 0.2-0.45 past the page cache (as much as reads from the
 * cache cost). A film is watched from start to end once in a while, so caching it as it plays only
 * pushes other things out.
 *
 * O_DIRECT needs the memory, the file position and the length aligned to the disk's blocks: the
 * read starts on the block holding the first byte wanted and ends on the block boundary after the
 * last, into memory with room for both ends; the caller gets a view of the bytes it asked for.
 */
import { constants, open, read } from 'node:fs';
import { ALIGN, alignedBytes, fsCall } from './direct-writer.ts';

/** Room for `bytes` read past the page cache: a block more at each end, in whole WebAssembly pages. */
export const directReadBytes = (bytes: number): Uint8Array =>
  alignedBytes(Math.ceil((bytes + 2 * ALIGN) / 65536) * 65536);

/** `file` opened for reading past the page cache. Rejects (EINVAL) where the file system refuses O_DIRECT. */
export const openDirectReader = (file: string): Promise<number> =>
  fsCall<number>((cb) => open(file, constants.O_RDONLY | constants.O_DIRECT, cb));

/**
 * Bytes [at, at + length) of `fd` (opened by openDirectReader), read into `room` (from
 * directReadBytes(length) or bigger): a view of `room`, shorter where the file ends first.
 */
export async function readDirect(
  fd: number,
  room: Uint8Array,
  at: number,
  length: number,
): Promise<Uint8Array> {
  const start = at - (at % ALIGN);
  const end = Math.ceil((at + length) / ALIGN) * ALIGN;
  if (end - start > room.length)
    throw new RangeError(`${end - start} bytes do not fit a room of ${room.length}`);
  let got = 0;
  // A short read that is not at the file's end stops on a block boundary: read on from there.
  while (got < end - start) {
    const n = await fsCall<number>((cb) => read(fd, room, got, end - start - got, start + got, cb));
    got += n;
    if (n === 0 || n % ALIGN !== 0) break;
  }
  const from = at - start;
  return room.subarray(from, Math.max(from, Math.min(got, from + length)));
}
