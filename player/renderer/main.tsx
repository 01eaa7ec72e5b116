/** Player app entry: the same bundle runs in a browser (served at /player/) and in the player's Electron shell. */
import { createRoot } from 'react-dom/client';
import { cryptoReady } from '../../shared/crypto.ts';
import type { ShellBridge } from '../../shared/shell-ipc.ts';
import { DexieStorage, type KeyProtector } from '../core/dexie-storage.ts';
import { PlayerApp, PlayerContext } from './player-app.tsx';
import { PlayerSession } from './player-session.ts';
import './styles.css';

const shell = (window as { rentalShell?: ShellBridge }).rentalShell;

/** In the Electron shell, the terminal's secret key is sealed by the OS keychain (safeStorage). */
const protector: KeyProtector | undefined =
  shell?.protect && shell.unprotect
    ? {
        protect: async (plain) => {
          const r = await (shell.protect as NonNullable<ShellBridge['protect']>)(plain);
          if (!r.ok) throw new Error(r.error.message);
          return r.value;
        },
        unprotect: async (sealed) => {
          const r = await (shell.unprotect as NonNullable<ShellBridge['unprotect']>)(sealed);
          if (!r.ok) throw new Error(r.error.message);
          return r.value;
        },
      }
    : undefined;

async function main() {
  await cryptoReady();
  const info = shell ? await shell.info() : undefined;
  const kind = info?.ok
    ? new URLSearchParams(location.search).has('kiosk')
      ? 'set-top'
      : 'desktop'
    : 'browser';
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const session = new PlayerSession(wsUrl, new DexieStorage('rental-player', protector), kind, localStorage);
  createRoot(document.getElementById('root') as HTMLElement).render(
    <PlayerContext.Provider value={session}>
      <PlayerApp />
    </PlayerContext.Provider>,
  );
  await session.start();
}

void main();
