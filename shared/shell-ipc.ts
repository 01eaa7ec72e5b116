/**
 * The one IPC surface between an Electron shell's renderer and its main process. Channel names and
 * payloads are defined here once; results cross the boundary as envelopes, never as thrown errors.
 */
export const SHELL_CHANNELS = { info: 'rental-shell:info' } as const;

export type Result<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

export interface ShellInfo {
  app: 'store' | 'player';
  version: string;
  platform: string;
}

/** What the preload exposes on `window.rentalShell` (nothing else from Node or Electron). */
export interface ShellBridge {
  info(): Promise<Result<ShellInfo>>;
}
