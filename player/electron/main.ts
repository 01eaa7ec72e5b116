/**
 * The player's Electron main process, thin like the store's: one window on the player served by
 * the server, locked down (context isolation, sandbox, no Node), single instance, with options for
 * set-top installs: --kiosk (full screen, no window chrome, no exit by keyboard), --fullscreen and
 * --autostart (start at login). The terminal's secret key is sealed with safeStorage via the bridge.
 */
import { join } from 'node:path';
import { app, type BrowserWindow, ipcMain, safeStorage } from 'electron';
import { openLockedWindow } from '../../app/electron/locked-window.ts';
import { type Result, SHELL_CHANNELS, type ShellInfo } from '../../shared/shell-ipc.ts';

const args = process.argv;
const argValue = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const kiosk = args.includes('--kiosk');
const server = new URL(argValue('--server') ?? process.env.RENTAL_SERVER ?? 'http://127.0.0.1:8080/');
const playerUrl = new URL(`/player/${kiosk ? '?kiosk' : ''}`, server).toString();

function fail(message: string): Result<never> {
  return { ok: false, error: { code: 'SAFE_STORAGE', message } };
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  let win: BrowserWindow | undefined;
  app.on('second-instance', () => {
    if (win?.isMinimized()) win.restore();
    win?.focus();
  });
  if (args.includes('--autostart')) app.setLoginItemSettings({ openAtLogin: true, args: args.slice(1) });
  app.whenReady().then(() => {
    ipcMain.handle(
      SHELL_CHANNELS.info,
      (): Result<ShellInfo> => ({
        ok: true,
        value: { app: 'player', version: app.getVersion(), platform: process.platform },
      }),
    );
    ipcMain.handle(SHELL_CHANNELS.protect, (_e, plain: unknown): Result<string> => {
      if (typeof plain !== 'string' || plain.length > 1024) return fail('expected a short string');
      if (!safeStorage.isEncryptionAvailable()) return fail('the OS keychain is not available');
      return { ok: true, value: safeStorage.encryptString(plain).toString('base64') };
    });
    ipcMain.handle(SHELL_CHANNELS.unprotect, (_e, sealed: unknown): Result<string> => {
      if (typeof sealed !== 'string' || sealed.length > 4096) return fail('expected a short string');
      try {
        return { ok: true, value: safeStorage.decryptString(Buffer.from(sealed, 'base64')) };
      } catch {
        return fail('the stored key cannot be opened on this device');
      }
    });
    win = openLockedWindow(playerUrl, join(__dirname, 'player-preload.cjs'), {
      width: 1280,
      height: 760,
      title: 'Rental Delivery Player',
      backgroundColor: '#07080c',
      kiosk,
      fullscreen: kiosk || args.includes('--fullscreen'),
      autoHideMenuBar: true,
    });
  });
  app.on('window-all-closed', () => app.quit());
}
