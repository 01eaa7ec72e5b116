/**
 * The one way both shells open their window: context isolation, a sandbox, no Node in the page,
 * only the given preload, and no navigation or popup away from the server's own origin.
 */
import { BrowserWindow, type BrowserWindowConstructorOptions } from 'electron';

export function openLockedWindow(
  url: string,
  preload: string,
  options: Omit<BrowserWindowConstructorOptions, 'webPreferences'>,
): BrowserWindow {
  const origin = new URL(url).origin;
  const win = new BrowserWindow({
    ...options,
    webPreferences: { preload, contextIsolation: true, nodeIntegration: false, sandbox: true },
  });
  win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  win.webContents.on('will-navigate', (e, to) => {
    if (new URL(to).origin !== origin) e.preventDefault();
  });
  void win.loadURL(url);
  return win;
}
