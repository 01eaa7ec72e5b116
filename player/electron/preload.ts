/** The player shell's preload: the typed bridge of shared/shell-ipc.ts, including key protection. */
import { contextBridge, ipcRenderer } from 'electron';
import { SHELL_CHANNELS, type ShellBridge } from '../../shared/shell-ipc.ts';

const bridge: ShellBridge = {
  info: () => ipcRenderer.invoke(SHELL_CHANNELS.info),
  protect: (plain) => ipcRenderer.invoke(SHELL_CHANNELS.protect, plain),
  unprotect: (sealed) => ipcRenderer.invoke(SHELL_CHANNELS.unprotect, sealed),
};
contextBridge.exposeInMainWorld('rentalShell', bridge);
