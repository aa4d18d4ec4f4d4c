// Broker accounts on a real Mosquitto: each account becomes a dynamic-security
// client plus a role of its own ("zedbox-<username>") holding the ACLs that
// controller/acl.ts gives its BrokerRole. Commands go as JSON to
// $CONTROL/dynamic-security/v1; the plugin publishes every answer to one
// response topic that all admin connections see, so each command carries a
// correlationData of ours and answers are matched on it.
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { mqttOptions } from '../lib/mqtt-options';
import { aclRules, type BrokerRole } from './acl';
import type { BrokerProvisioner } from './broker-accounts';

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 15_000;

// ---- Pure: what the plugin is told ----

export type DynsecAclType = 'publishClientSend' | 'publishClientReceive' | 'subscribePattern';
export interface DynsecAcl {
  acltype: DynsecAclType;
  topic: string;
  allow: boolean;
}
export type DynsecCommand = { command: string } & Record<string, unknown>;
export interface DynsecResponse {
  command: string;
  error?: string;
  data?: unknown;
  correlationData?: string;
}

export function roleNameFor(username: string): string {
  return `zedbox-${username}`;
}

/**
 * A role's ACLs. Subscribing takes two grants in dynsec: the subscription itself
 * and the receipt of each message. Mosquitto 2.0.11 checks a shared
 * subscription against its full "$share/<group>/<filter>" text, so each
 * subscribe filter is also granted under $share/+/ (the controller shares its
 * subscriptions among replicas).
 */
export function dynsecAcls(role: BrokerRole): DynsecAcl[] {
  const acls: DynsecAcl[] = [];
  for (const rule of aclRules(role)) {
    if (rule.action === 'publish') {
      acls.push({ acltype: 'publishClientSend', topic: rule.filter, allow: true });
    } else {
      acls.push({ acltype: 'subscribePattern', topic: rule.filter, allow: true });
      acls.push({ acltype: 'subscribePattern', topic: `$share/+/${rule.filter}`, allow: true });
      acls.push({ acltype: 'publishClientReceive', topic: rule.filter, allow: true });
    }
  }
  return acls;
}

function roleText(role: BrokerRole): string {
  return role.kind === 'device' ? `zedbox device ${role.deviceId}` : `zedbox ${role.kind}`;
}

/** Default-deny: whatever no role grants is refused. Unsubscribing stays allowed (it grants nothing). */
export const DEFAULT_ACL_ACCESS = [
  { acltype: 'publishClientSend', allow: false },
  { acltype: 'publishClientReceive', allow: false },
  { acltype: 'subscribe', allow: false },
  { acltype: 'unsubscribe', allow: true },
] as const;

const alreadyExists = (r: DynsecResponse): boolean => /already exists/i.test(r.error ?? '');
const notFound = (r: DynsecResponse): boolean => /not found/i.test(r.error ?? '');

export class DynsecError extends Error {
  constructor(readonly command: string, readonly dynsecError: string) {
    super(`dynsec ${command}: ${dynsecError}`);
    this.name = 'DynsecError';
  }
}

function failIfError(r: DynsecResponse, tolerated: (r: DynsecResponse) => boolean = () => false): void {
  if (r.error !== undefined && !tolerated(r)) throw new DynsecError(r.command, r.error);
}

// ---- Side effects: one admin connection ----

interface Pending {
  resolve(r: DynsecResponse): void;
  reject(err: Error): void;
}

export class DynsecProvisioner implements BrokerProvisioner {
  private readonly pending = new Map<string, Pending>();
  /** Distinguishes our answers from those of other admin connections on the shared response topic. */
  private readonly idPrefix = randomBytes(6).toString('hex');
  private seq = 0;
  private closed = false;
  /** mqtt.js reconnects by itself; its last error explains a later timeout. */
  private lastError: string | undefined;

  constructor(
    private readonly client: MqttClient,
    /** The account this connection uses: upsert/remove must not rewrite it (that would lock zedctl out). */
    private readonly adminUsername: string,
    private readonly commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
  ) {
    client.on('message', (topic, payload) => {
      if (topic === DYNSEC_RESPONSE_TOPIC) this.onResponse(payload);
    });
    client.on('error', (err) => (this.lastError = err.message));
    client.on('connect', () => (this.lastError = undefined));
  }

  /** Creates the account or replaces its password and ACLs. Replacing makes Mosquitto drop the user's open connection. */
  async upsert(username: string, password: string, role: BrokerRole): Promise<void> {
    this.checkUsername('upsert', username);
    // dynsec would create the client without a password, or keep the old one on modifyClient.
    if (!password) throw new Error(`dynsec upsert ${username}: empty password`);
    const rolename = roleNameFor(username);
    const acls = dynsecAcls(role);
    const roles = [{ rolename }];
    const [roleAnswer, clientAnswer] = await this.run([
      { command: 'createRole', rolename, textname: roleText(role), acls },
      { command: 'createClient', username, password, roles },
    ]);
    failIfError(roleAnswer!, alreadyExists);
    failIfError(clientAnswer!, alreadyExists);
    const updates: DynsecCommand[] = [];
    if (alreadyExists(roleAnswer!)) updates.push({ command: 'modifyRole', rolename, textname: roleText(role), acls });
    if (alreadyExists(clientAnswer!)) updates.push({ command: 'modifyClient', username, password, roles });
    if (updates.length) for (const answer of await this.run(updates)) failIfError(answer);
  }

  /** Deletes the account and its role; an unknown account is already removed. Mosquitto drops its open connection. */
  async remove(username: string): Promise<void> {
    this.checkUsername('remove', username);
    const answers = await this.run([
      { command: 'deleteClient', username },
      { command: 'deleteRole', rolename: roleNameFor(username) },
    ]);
    for (const answer of answers) failIfError(answer, notFound);
  }

  async ensureDefaults(): Promise<void> {
    const [answer] = await this.run([{ command: 'setDefaultACLAccess', acls: DEFAULT_ACL_ACCESS }]);
    failIfError(answer!);
  }

  /** Sends commands in one message; answers come back in the same order. */
  async run(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    if (this.closed) throw new Error('dynsec connection is closed');
    const ids = commands.map(() => `${this.idPrefix}-${++this.seq}`);
    const answers = ids.map((id, i) => this.awaitAnswer(id, commands[i]!.command));
    const payload = JSON.stringify({ commands: commands.map((c, i) => ({ ...c, correlationData: ids[i] })) });
    this.client.publish(DYNSEC_TOPIC, payload, { qos: 1 }, (err) => {
      if (err) for (const id of ids) this.settle(id, err);
    });
    return Promise.all(answers);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.settle(id, new Error('dynsec connection closed before the answer'));
    await this.client.endAsync();
  }

  private checkUsername(what: string, username: string): void {
    if (!username) throw new Error(`dynsec ${what}: empty username`);
    if (username === this.adminUsername) throw new Error(`dynsec ${what}: refusing to change the admin account ${username}`);
  }

  private awaitAnswer(id: string, command: string): Promise<DynsecResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const why = this.lastError ? `last connection error: ${this.lastError}`
          : 'is the dynamic-security plugin loaded, and may this account use $CONTROL/dynamic-security?';
        this.settle(id, new Error(`dynsec ${command}: no answer within ${this.commandTimeoutMs / 1000} s (${why})`));
      }, this.commandTimeoutMs);
      this.pending.set(id, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
    });
  }

  private settle(id: string, outcome: DynsecResponse | Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  private onResponse(payload: Buffer): void {
    let responses: unknown;
    try {
      responses = (JSON.parse(payload.toString()) as { responses?: unknown }).responses;
    } catch {
      return; // not an answer we can read; the command's timeout reports it
    }
    if (!Array.isArray(responses)) return;
    for (const r of responses as DynsecResponse[]) {
      if (typeof r?.correlationData === 'string') this.settle(r.correlationData, r);
    }
  }
}

/** Connects as the dynsec admin account and listens for answers. Rejects on a refused login or TLS failure. */
export async function connectDynsec(opts: {
  url: string;
  caPem?: string;
  username: string;
  password: string;
  /** How long a command may wait for its answer; 10 s unless a test wants it shorter. */
  commandTimeoutMs?: number;
}): Promise<DynsecProvisioner> {
  const client = connect(opts.url, mqttOptions(
    { url: opts.url, caPem: opts.caPem, username: opts.username, password: opts.password },
    { clientId: `zedctl-dynsec-${randomBytes(6).toString('hex')}`, clean: true },
  ));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dynsec: no connection to ${opts.url} within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      client.once('connect', () => (clearTimeout(timer), resolve()));
      client.once('error', (err) => (clearTimeout(timer), reject(new Error(`dynsec: cannot connect to ${opts.url} as ${opts.username}: ${err.message}`))));
    });
    // Subscribed before any command, so no answer can be missed; mqtt.js resubscribes after a reconnect.
    await client.subscribeAsync(DYNSEC_RESPONSE_TOPIC, { qos: 1 }).catch((err: Error) => {
      throw new Error(`dynsec: ${opts.username} may not subscribe to ${DYNSEC_RESPONSE_TOPIC}: ${err.message}`);
    });
  } catch (err) {
    client.end(true);
    throw err;
  }
  return new DynsecProvisioner(client, opts.username, opts.commandTimeoutMs);
}
