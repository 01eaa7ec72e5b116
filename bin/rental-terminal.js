#!/usr/bin/env node
// Installed command `rental-terminal`: the headless terminal.
import { register } from 'tsx/esm/api';

register();
// The module runs itself only when it is the script named on the command line (npm run terminal);
// imported from here it would do nothing, so run it explicitly.
const { runTerminalCli } = await import('../player/headless/cli.ts');
runTerminalCli();
