/**
 * The player's screens, sized for a TV across the room as much as a desktop: a large pairing code
 * until the terminal is linked, the library of rentals on this terminal, and playback.
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import { cipherChunkLength } from '../../shared/crypto.ts';
import { LIMITS } from '../../shared/limits.ts';
import { TerminalError } from '../core/terminal-core.ts';
import { feedVideo } from './media-feed.ts';
import type { LibraryRow, PlayerSession } from './player-session.ts';

export const PlayerContext = createContext<PlayerSession | null>(null);
const usePlayer = () => {
  const p = useContext(PlayerContext);
  if (!p) throw new Error('PlayerContext missing');
  return p;
};
const usePlayerState = () => {
  const p = usePlayer();
  return useSyncExternalStore(p.subscribe, p.getState);
};
function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s % 60} s`;
}
const clock = (t: number) =>
  new Date(t).toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

function storedBytes(r: LibraryRow): number {
  if (r.expired || r.have === 0) return 0;
  return r.have * cipherChunkLength(r.chunkSize);
}

type RowState = 'expired' | 'downloading' | 'waiting-key' | 'not-yet' | 'ready' | 'clock-blocked';
function rowState(r: LibraryRow, now: number | null): RowState {
  if (r.expired) return 'expired';
  if (now === null) return 'clock-blocked';
  if (now >= r.notAfter) return 'expired';
  if (r.have < r.totalChunks) return 'downloading';
  if (!r.keyHere) return 'waiting-key';
  if (now < r.notBefore) return 'not-yet';
  return 'ready';
}

const REFUSAL: Record<string, string> = {
  WINDOW_NOT_OPEN: 'This rental has not started yet.',
  EXPIRED: 'The rental period has ended. The film was removed from this player.',
  CLOCK_TURNED_BACK:
    "This device's clock was set back. Set the correct time, or connect to the internet, to play.",
  NO_LICENCE: 'The key for this film has not arrived yet.',
  INCOMPLETE: 'The film has not finished downloading.',
  TAMPERED:
    'The stored film is damaged and cannot be played. It will be downloaded again if you rent it again.',
};

function Pairing() {
  const { pairingCode, pairingExpiresAt, conn } = usePlayerState();
  const player = usePlayer();
  const now = useNow();
  const store = `${location.origin}/store/`;
  if (!pairingCode) {
    return (
      <section className="pairing" data-testid="pairing">
        <p className="eyebrow">Link this player to your account</p>
        <p>{conn === 'offline' ? 'The server cannot be reached. Retrying…' : 'Getting a pairing code…'}</p>
      </section>
    );
  }
  return (
    <section className="pairing" data-testid="pairing">
      <p className="eyebrow">Link this player to your account</p>
      <div className="code" data-testid="pairing-code">
        {pairingCode}
      </div>
      <p>
        In the store (<strong>{store}</strong>) open <strong>Terminals</strong> and type this code.
      </p>
      {pairingExpiresAt && (
        <p className="muted">
          New code in {span(pairingExpiresAt - now)}{' '}
          <button type="button" className="link" onClick={() => player.core.refreshPairing()}>
            Get a new code now
          </button>
        </p>
      )}
    </section>
  );
}

function RentalCard({ r, onPlay }: { r: LibraryRow; onPlay: () => void }) {
  const player = usePlayer();
  useNow();
  // Judge the window by trusted time (server-signed, monotonic), never by the device clock alone.
  const trusted = player.core.trustedNow();
  const now = trusted.ok ? trusted.now : Date.now();
  const state = rowState(r, trusted.ok ? trusted.now : null);
  const pct = Math.floor((r.have / r.totalChunks) * 100);
  return (
    <li className={`rental ${state}`} data-testid={`rental-${r.orderId}`} data-state={state}>
      <img
        className="poster"
        src={`/posters/${r.itemNumber}`}
        alt=""
        onError={(e) => e.currentTarget.classList.add('missing')}
      />
      <div className="body">
        <strong className="title">{r.title}</strong>
        {state === 'downloading' && (
          <>
            <span className="status">
              Downloading {pct}% · {mb(Math.min(r.size, r.have * r.chunkSize))} of {mb(r.size)}
            </span>
            <div
              className="bar"
              role="progressbar"
              aria-valuenow={pct}
              aria-valuemin={0}
              aria-valuemax={100}
              data-testid="download-progress"
            >
              <div style={{ width: `${pct}%` }} />
            </div>
          </>
        )}
        {state === 'waiting-key' && (
          <span className="status">
            Downloaded · the key arrives{' '}
            {now < r.notBefore ? `${clock(r.notBefore)} (in ${span(r.notBefore - now)})` : 'shortly'}
          </span>
        )}
        {state === 'not-yet' && (
          <span className="status">
            Unlocks {clock(r.notBefore)} (in {span(r.notBefore - now)})
          </span>
        )}
        {state === 'ready' && (
          <span className="status ready" data-testid="time-left">
            Ready · {span(r.notAfter - now)} left
          </span>
        )}
        {state === 'clock-blocked' && (
          <span className="status warn" data-testid="clock-blocked">
            {REFUSAL.CLOCK_TURNED_BACK}
          </span>
        )}
        {state === 'expired' && (
          <span className="status">Expired {clock(r.notAfter)} · removed from this player</span>
        )}
        <span className="muted small">
          {state === 'expired' ? 'nothing stored' : `${mb(storedBytes(r))} stored, encrypted`}
        </span>
      </div>
      {state === 'ready' && (
        <button type="button" className="play" onClick={onPlay} data-testid={`play-${r.orderId}`}>
          ▶ Play
        </button>
      )}
    </li>
  );
}

const AD_SECONDS = 3;
const IMAGE_PREROLL_SECONDS = LIMITS.imagePrerollSeconds;

/** The pushed ad, shown while the player is idle or waiting (never over a film). */
function AdPanel() {
  const { ad } = usePlayerState();
  const player = usePlayer();
  // An impression: completed once on screen for AD_SECONDS, skipped if it leaves the screen sooner.
  useEffect(() => {
    if (!ad) return;
    let done = false;
    const t = setTimeout(() => {
      done = true;
      void player.core.recordImpression(ad.adId, true);
    }, AD_SECONDS * 1000);
    return () => {
      clearTimeout(t);
      if (!done) void player.core.recordImpression(ad.adId, false);
    };
  }, [ad, player]);
  if (!ad) return null;
  return (
    <aside className="ad" data-testid="ad" data-ad-id={ad.adId}>
      <span className="ad-label">Sponsored</span>
      {ad.mimeType.startsWith('video/') ? (
        <video src={ad.creativeUrl} muted autoPlay loop playsInline />
      ) : (
        <img src={ad.creativeUrl} alt="" />
      )}
      <p>{ad.text}</p>
    </aside>
  );
}

function Library({ onPlay }: { onPlay: (orderId: string) => void }) {
  const { library } = usePlayerState();
  const [usage, setUsage] = useState<string | null>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: re-measure whenever the library changes
  useEffect(() => {
    void navigator.storage?.estimate?.().then((e) => setUsage(e.usage !== undefined ? mb(e.usage) : null));
  }, [library]);
  return (
    <section data-testid="library">
      <div className="library-head">
        <h2>On this player</h2>
        {usage && (
          <span className="muted" data-testid="disk-use">
            {usage} used on this device
          </span>
        )}
      </div>
      {library.length === 0 ? (
        <p className="muted empty">Nothing here yet. Rent a film in the store and choose this player.</p>
      ) : (
        <ul className="library">
          {library.map((r) => (
            <RentalCard key={r.orderId} r={r} onPlay={() => onPlay(r.orderId)} />
          ))}
        </ul>
      )}
    </section>
  );
}

type Preroll = NonNullable<Awaited<ReturnType<PlayerSession['core']['pendingPreroll']>>>;

/**
 * The ad that came with the film (claims 14/20/26): it plays to its end before the title starts the
 * first time. It cannot be skipped; leaving it means it plays again next time.
 */
function PrerollScreen({ preroll, onDone }: { preroll: Preroll; onDone: () => void }) {
  const [url] = useState(() =>
    URL.createObjectURL(new Blob([preroll.creative as Uint8Array<ArrayBuffer>], { type: preroll.mimeType })),
  );
  const [left, setLeft] = useState<number | null>(null);
  const isVideo = preroll.mimeType.startsWith('video/');
  useEffect(() => () => URL.revokeObjectURL(url), [url]);
  // A still image stays on screen for a fixed time.
  useEffect(() => {
    if (isVideo) return;
    const end = Date.now() + IMAGE_PREROLL_SECONDS * 1000;
    const tick = () => {
      const ms = end - Date.now();
      if (ms <= 0) return onDone();
      setLeft(Math.ceil(ms / 1000));
      t = setTimeout(tick, Math.min(250, ms));
    };
    let t = setTimeout(tick, 0);
    return () => clearTimeout(t);
  }, [isVideo, onDone]);
  return (
    <div className="preroll" data-testid="preroll" data-ad-id={preroll.adId}>
      <span className="ad-label">Ad · your film starts {left !== null ? `in ${left} s` : 'after this'}</span>
      {isVideo ? (
        <video
          src={url}
          autoPlay
          muted
          playsInline
          onEnded={onDone}
          onTimeUpdate={(e) => {
            const v = e.currentTarget;
            if (Number.isFinite(v.duration)) setLeft(Math.max(0, Math.ceil(v.duration - v.currentTime)));
          }}
        />
      ) : (
        <img src={url} alt="" />
      )}
      <p>{preroll.text}</p>
    </div>
  );
}

function Playback({ orderId, onClose }: { orderId: string; onClose: () => void }) {
  const player = usePlayer();
  const { library } = usePlayerState();
  const row = library.find((r) => r.orderId === orderId);
  const video = useRef<HTMLVideoElement>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [phase, setPhase] = useState<'checking' | 'preroll' | 'title'>('checking');
  const [preroll, setPreroll] = useState<Preroll | null>(null);
  const now = useNow();
  const refuse = (err: unknown) =>
    setMessage(
      err instanceof TerminalError
        ? (REFUSAL[err.code] ?? err.message)
        : `Cannot play: ${(err as Error).message}`,
    );

  // First the checks the title would fail anyway (no ad before a film that cannot play), then the ad.
  // biome-ignore lint/correctness/useExhaustiveDependencies: keyed on the order only
  useEffect(() => {
    let live = true;
    (async () => {
      await player.core.checkPlayable(orderId);
      const p = await player.core.pendingPreroll(orderId);
      if (!live) return;
      setPreroll(p ?? null);
      setPhase(p ? 'preroll' : 'title');
    })().catch((err) => live && refuse(err));
    return () => {
      live = false;
    };
  }, [orderId]);

  const prerollDone = useCallback(() => {
    player.core
      .prerollPlayed(orderId)
      .catch(() => undefined)
      .finally(() => setPhase('title'));
  }, [player, orderId]);

  // Start once per order: a library refresh (new progress, a licence) must not restart playback.
  // biome-ignore lint/correctness/useExhaustiveDependencies: deliberately keyed on the order and phase only
  useEffect(() => {
    const v = video.current;
    if (!v || !row || phase !== 'title') return;
    const ctrl = new AbortController();
    let lastSaved = 0;
    const stop = (text: string) => {
      ctrl.abort();
      v.pause();
      v.removeAttribute('src');
      v.load();
      setMessage(text);
    };
    const off = player.onTerminalEvent((e) => {
      if (e.type === 'expired' && e.orderId === orderId) stop(REFUSAL.EXPIRED as string);
    });
    const save = () => {
      if (Math.abs(v.currentTime - lastSaved) >= 2 || v.paused) {
        lastSaved = v.currentTime;
        void player.storage.savePosition(orderId, v.currentTime);
      }
    };
    v.addEventListener('timeupdate', save);
    v.addEventListener('pause', save);
    v.addEventListener(
      'loadedmetadata',
      async () => {
        const at = await player.storage.position(orderId);
        if (at > 1 && Number.isFinite(v.duration) && at < v.duration - 2) v.currentTime = at;
        void v.play().catch(() => undefined);
      },
      { once: true },
    );
    feedVideo(player.core, orderId, row.mimeType, v, ctrl.signal).catch((err) => {
      if (ctrl.signal.aborted) return;
      stop(
        err instanceof TerminalError
          ? (REFUSAL[err.code] ?? err.message)
          : `Cannot play: ${(err as Error).message}`,
      );
    });
    return () => {
      ctrl.abort();
      off();
      v.removeEventListener('timeupdate', save);
      v.removeEventListener('pause', save);
    };
  }, [orderId, phase]);

  return (
    <section className="playback" data-testid="playback">
      <div className="playback-head">
        <button type="button" onClick={onClose} data-testid="back">
          ← Library
        </button>
        <strong>{row?.title}</strong>
        {row && !message && <span className="muted">{span(row.notAfter - now)} left</span>}
      </div>
      <div className="screen">
        <video ref={video} controls muted playsInline data-testid="video" />
        {phase === 'preroll' && preroll && !message && (
          <PrerollScreen preroll={preroll} onDone={prerollDone} />
        )}
        {message && (
          <div className="overlay" role="alert" data-testid="playback-message">
            {message}
          </div>
        )}
      </div>
    </section>
  );
}

export function PlayerApp() {
  const { conn, linked, linkedName, terminalId, lastError } = usePlayerState();
  const [playing, setPlaying] = useState<string | null>(null);
  return (
    <div className="player">
      <header>
        <span className="brand">
          Rental<span>Player</span>
        </span>
        <span className="who">{linked ? (linkedName ?? 'Linked') : 'Not linked'}</span>
        <span className={`conn ${conn}`} data-testid="player-conn">
          {conn === 'online'
            ? 'Online'
            : conn === 'connecting'
              ? 'Connecting…'
              : 'Offline · playing what is stored'}
        </span>
        <span className="muted small">terminal {terminalId.slice(0, 8)}</span>
      </header>
      {lastError && <p className="error">{lastError}</p>}
      {playing ? (
        <Playback orderId={playing} onClose={() => setPlaying(null)} />
      ) : (
        <main>
          {!linked && <Pairing />}
          <AdPanel />
          <Library onPlay={setPlaying} />
        </main>
      )}
    </div>
  );
}
