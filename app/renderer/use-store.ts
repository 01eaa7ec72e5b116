/** React bindings: the session's state, a clock that ticks for countdowns, and the hash route. */
import { createContext, useContext, useEffect, useState, useSyncExternalStore } from 'react';
import type { StoreSession, StoreState } from './store-session.ts';

export const SessionContext = createContext<StoreSession | null>(null);

export function useSession(): StoreSession {
  const s = useContext(SessionContext);
  if (!s) throw new Error('SessionContext missing');
  return s;
}

export function useStoreState(): StoreState {
  const s = useSession();
  return useSyncExternalStore(s.subscribe, s.getState);
}

export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

export type Route =
  | { name: 'catalog' }
  | { name: 'title'; itemNumber: number }
  | { name: 'rentals' }
  | { name: 'terminals' }
  | { name: 'analytics' };

export function parseRoute(hash: string): Route {
  const m = /^#\/title\/(\d{1,9})$/.exec(hash);
  if (m) return { name: 'title', itemNumber: Number(m[1]) };
  if (hash === '#/rentals') return { name: 'rentals' };
  if (hash === '#/terminals') return { name: 'terminals' };
  if (hash === '#/analytics') return { name: 'analytics' };
  return { name: 'catalog' };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return parseRoute(hash);
}

export const go = (hash: string) => {
  location.hash = hash;
};

/** Run an async action, keeping its busy state and its error message for the form that started it. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      const e = err as Error & { issues?: string[] };
      setError(e.issues?.length ? `${e.message}: ${e.issues.join('; ')}` : e.message);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}
