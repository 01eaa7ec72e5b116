/**
 * The store app's Electron main process: deliberately thin. It opens one window on the store
 * served by the server, with context isolation, no Node in the renderer, a sandbox, and the narrow
 * preload bridge. Everything the customer does is the same renderer that runs in a browser.
 */
import { join } from 'node:path';
import { app, type BrowserWindow, ipcMain } from 'electron';
import { type Result, SHELL_CHANNELS, type ShellInfo } from '../../shared/shell-ipc.ts';
import { openLockedWindow } from './locked-window.ts';

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const server = new URL(argValue('--server') ?? process.env.RENTAL_SERVER ?? 'http://127.0.0.1:8080/');
const storeUrl = new URL('/store/', server).toString();
let win: BrowserWindow | undefined;

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    if (win?.isMinimized()) win.restore();
    win?.focus();
  });
  app.whenReady().then(() => {
    ipcMain.handle(
      SHELL_CHANNELS.info,
      (): Result<ShellInfo> => ({
        ok: true,
        value: { app: 'store', version: app.getVersion(), platform: process.platform },
      }),
    );
    win = openLockedWindow(storeUrl, join(__dirname, 'preload.cjs'), {
      width: 1200,
      height: 820,
      title: 'Rental Delivery',
      backgroundColor: '#0f1117',
    });
  });
  app.on('window-all-closed', () => app.quit());
}
