#!/usr/bin/env node
// Installed command `rental-terminal`: the headless terminal.
import { register } from 'tsx/esm/api';

register();
await import('../player/headless/cli.ts');
