/** The store shell's preload: exposes exactly the typed bridge in shared/shell-ipc.ts, nothing more. */
import { contextBridge, ipcRenderer } from 'electron';
import { SHELL_CHANNELS, type ShellBridge } from '../../shared/shell-ipc.ts';

const bridge: ShellBridge = { info: () => ipcRenderer.invoke(SHELL_CHANNELS.info) };
contextBridge.exposeInMainWorld('rentalShell', bridge);
