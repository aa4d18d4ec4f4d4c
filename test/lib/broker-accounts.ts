// The controller's account store reduced to a map, for tests that run the embedded
// broker without a controller; passwords are kept here only so tests can log in.
import type { BrokerRole } from '../../controller/acl';
import { hashPassword, newPassword, type AccountLookup, type BrokerAccount } from '../../controller/broker-accounts';

export class Accounts implements AccountLookup {
  readonly records = new Map<string, BrokerAccount>();
  readonly passwords = new Map<string, string>();
  add(username: string, role: BrokerRole): string {
    const password = newPassword();
    this.records.set(username, { username, role, passwordHash: hashPassword(password) });
    this.passwords.set(username, password);
    return password;
  }
  lookup(username: string): BrokerAccount | undefined {
    return this.records.get(username);
  }
}
