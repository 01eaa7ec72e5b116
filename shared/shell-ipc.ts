/**
 * The one IPC surface between an Electron shell's renderer and its main process. Channel names and
 * payloads are defined here once; results cross the boundary as envelopes, never as thrown errors.
 */
export const SHELL_CHANNELS = {
  info: 'rental-shell:info',
  protect: 'rental-shell:protect',
  unprotect: 'rental-shell:unprotect',
} as const;

export type Result<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

export interface ShellInfo {
  app: 'store' | 'player';
  version: string;
  platform: string;
}

/** What the preload exposes on `window.rentalShell` (nothing else from Node or Electron). */
export interface ShellBridge {
  info(): Promise<Result<ShellInfo>>;
  /** Player shell only: seal and open a secret with the OS keychain (Electron safeStorage). */
  protect?(plain: string): Promise<Result<string>>;
  unprotect?(sealed: string): Promise<Result<string>>;
}
