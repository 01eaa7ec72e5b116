/**
 * Plays a rental without ever writing the clear title anywhere: chunks are decrypted one by one
 * and appended to a Media Source Extensions buffer of a <video>. Appending pauses while plenty is
 * buffered ahead of the playhead, so long titles do not fill memory.
 */
import type { TerminalCore } from '../core/terminal-core.ts';

const AHEAD_SECONDS = 90;

function once(target: EventTarget, event: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      signal.removeEventListener('abort', abort);
      resolve();
    };
    const abort = () => {
      target.removeEventListener(event, done);
      reject(new DOMException('playback stopped', 'AbortError'));
    };
    target.addEventListener(event, done, { once: true });
    signal.addEventListener('abort', abort, { once: true });
  });
}

function bufferedAhead(video: HTMLVideoElement): number {
  const b = video.buffered;
  return b.length ? b.end(b.length - 1) - video.currentTime : 0;
}

export async function feedVideo(
  core: TerminalCore,
  orderId: string,
  mimeType: string,
  video: HTMLVideoElement,
  signal: AbortSignal,
): Promise<void> {
  if (!('MediaSource' in window) || !MediaSource.isTypeSupported(mimeType)) {
    throw new Error(`this player cannot play ${mimeType}`);
  }
  const source = new MediaSource();
  const url = URL.createObjectURL(source);
  video.src = url;
  await once(source, 'sourceopen', signal);
  URL.revokeObjectURL(url);
  const buffer = source.addSourceBuffer(mimeType);
  await core.decrypt(
    orderId,
    async (plain) => {
      while (bufferedAhead(video) > AHEAD_SECONDS && !signal.aborted) {
        await new Promise((r) => setTimeout(r, 500));
      }
      if (signal.aborted || source.readyState !== 'open') return;
      buffer.appendBuffer(plain as Uint8Array<ArrayBuffer>);
      await once(buffer, 'updateend', signal);
    },
    signal,
    // appendBuffer copies, and the next chunk waits for updateend: one buffer serves every chunk.
    { reuse: true },
  );
  if (!signal.aborted && source.readyState === 'open') source.endOfStream();
}
