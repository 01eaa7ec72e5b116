/** The storage contract on SQLite (the embedded default). */
import { join } from 'node:path';
import { afterEach } from 'node:test';
import { SqliteRepository } from '../../server/store/sqlite.ts';
import { cleanup, tempDir } from '../harness.ts';
import { repositoryContract } from './repository-contract.ts';

afterEach(cleanup);

repositoryContract('SQLite', {
  async open() {
    const file = join(tempDir(), 'rental.sqlite');
    return { repo: new SqliteRepository(file), again: async () => new SqliteRepository(file) };
  },
});
