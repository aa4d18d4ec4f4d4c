// The embedded broker's accounts in <state>/accounts.json: read by the broker at
// every connect (AccountLookup), changed by whichever replica or command creates
// an account (BrokerProvisioner). Only scrypt hashes are stored. A change made by
// another process is seen through the file's mtime and size.
import * as fs from 'node:fs';
import type { BrokerRole } from './acl';
import { hashPassword, type AccountLookup, type BrokerAccount, type BrokerProvisioner } from './broker-accounts';
import { readJson, writeJson, type StateDir } from './state-dir';

interface AccountsFileContent {
  accounts: BrokerAccount[];
}

export class AccountsFile implements AccountLookup, BrokerProvisioner {
  private readonly file: string;
  private cache = new Map<string, BrokerAccount>();
  private stamp = '';

  constructor(private readonly state: StateDir) {
    this.file = state.path('accounts.json');
  }

  lookup(username: string): BrokerAccount | undefined {
    this.reloadIfChanged();
    return this.cache.get(username);
  }

  async upsert(username: string, password: string, role: BrokerRole): Promise<void> {
    // Hash outside the lock: scrypt takes tens of ms and the lock is shared.
    const account: BrokerAccount = { username, role, passwordHash: hashPassword(password) };
    this.change((accounts) => accounts.set(username, account));
  }

  async remove(username: string): Promise<void> {
    this.change((accounts) => accounts.delete(username));
  }

  usernames(): string[] {
    this.reloadIfChanged();
    return [...this.cache.keys()];
  }

  private change(edit: (accounts: Map<string, BrokerAccount>) => void): void {
    this.state.withLockSync('accounts', () => {
      const accounts = new Map((readJson<AccountsFileContent>(this.file)?.accounts ?? []).map((a) => [a.username, a]));
      edit(accounts);
      writeJson(this.file, { accounts: [...accounts.values()] } satisfies AccountsFileContent);
    });
    this.stamp = '';
    this.reloadIfChanged();
  }

  private reloadIfChanged(): void {
    let stamp: string;
    try {
      const st = fs.statSync(this.file);
      stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      stamp = 'absent';
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    const content = readJson<AccountsFileContent>(this.file);
    this.cache = new Map((content?.accounts ?? []).map((a) => [a.username, a]));
  }
}
