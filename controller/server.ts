// `zedctl serve`: the controller process. Without a broker URL it runs its own
// (embedded, aedes) broker with the accounts in the state dir; with one (Mosquitto)
// it creates its accounts through dynamic security. Either way it listens to
// onboarding requests and to everything devices send up. Replicas sharing a state
// dir and an external broker split the traffic through shared subscriptions.
import * as os from 'node:os';
import type { MqttClient } from 'mqtt';
import { connect } from 'mqtt';
import { controllerFilters, parseTopic, shared } from '../api/topics';
import type { Logger } from '../lib/log';
import { mqttOptions } from '../lib/mqtt-options';
import { AccountsFile } from './accounts-file';
import { CONNECT_TIMEOUT_MS, publishAcked } from './broker-client';
import { checkPassword, newPassword, type BrokerProvisioner } from './broker-accounts';
import { connectDynsec } from './broker-dynsec';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker';
import { RetainedSweep } from './retained-sweep';
import { Ingest, type IngestCounters } from './ingest';
import { LogIngest, type LogIngestCounters } from './log-ingest';
import { LogStore } from './log-store';
import { OnboardingHandler, type OnboardingCounters } from './onboarding-handler';
import { StateDir, type Account, type ServerInfo } from './state-dir';

export const DEFAULT_GROUP = 'zedctl';
export const DEFAULT_LISTEN = { host: '127.0.0.1', port: 1883 };
export const CONTROLLER_USERNAME = 'zedctl-controller';
export const ONBOARD_USERNAME = 'zedbox-onboard';

export interface ControllerOptions {
  stateDir: string;
  /** An external broker (Mosquitto); absent: the embedded one. */
  brokerUrl?: string;
  caPem?: string;
  /** Where the embedded broker listens (default 127.0.0.1:1883; port 0 picks a free one). */
  listen?: { host: string; port: number };
  /** The embedded broker's TLS certificate and key; caPem (default the certificate) goes to devices. */
  tls?: { certPem: string; keyPem: string };
  /** Dynamic-security admin of the external broker: creates the controller's and devices' accounts. */
  dynsecAdmin?: Account;
  /** Shared-subscription group of the replicas (external broker only). */
  group?: string;
  /** Names this replica in its MQTT client id (default: the host name). */
  replica?: string;
  /** The broker address written into provisioning files, when devices reach it by another name. */
  publicUrl?: string;
  /** Log bytes kept per device before the oldest batches go (default 256 MiB). */
  logRetentionBytes?: number;
  log: Logger;
}

export interface ControllerCounters {
  onboarding: OnboardingCounters;
  ingest: IngestCounters;
  logs: LogIngestCounters & { deletedByRetention: number };
  broker?: ReturnType<EmbeddedBroker['stats']>;
}

export interface RunningController {
  url: string;
  counters(): ControllerCounters;
  close(): Promise<void>;
}

interface BrokerSide {
  server: ServerInfo;
  provisioner: BrokerProvisioner & { close?(): Promise<void> };
  embedded?: EmbeddedBroker;
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const state = new StateDir(opts.stateDir);
  state.init();
  const keys = state.ensureKeys();
  // Replicas starting together must agree on one set of accounts in server.json.
  const side = await state.withLock('server', () => (opts.brokerUrl ? externalBroker(state, opts, opts.brokerUrl) : embeddedBroker(state, opts)));
  const { server } = side;
  const log = opts.log;

  const group = opts.group ?? DEFAULT_GROUP;
  const replica = (opts.replica ?? os.hostname()).replace(/[^A-Za-z0-9_.-]/g, '_');
  let client: MqttClient | undefined;
  try {
    client = await connectController(server, `zedctl-${group}-${replica}`);
  } catch (err) {
    await closeSide(side);
    throw err;
  }
  const mq = client;
  const onboarding = new OnboardingHandler({
    state, keys, provisioner: side.provisioner, log: log.child('onboarding'),
    publish: (topic, payload, o) => publishAcked(mq, topic, payload, o.retain),
  });
  const ingest = new Ingest(state, log.child('ingest'), undefined, replica);
  const logStore = new LogStore(state.dir, opts.logRetentionBytes);
  const logIngest = new LogIngest({
    state, store: logStore, keys, log: log.child('logs'), replica,
    publish: (topic, payload) => publishAcked(mq, topic, payload, false),
  });
  mq.on('message', (topic, payload) => {
    try {
      const t = parseTopic(topic);
      if (t?.type === 'onboardRequest') void onboarding.handle(t.serial, payload);
      else if (t?.type === 'logs') logIngest.handle(topic, payload);
      else ingest.handle(topic, payload);
    } catch (err) {
      log.error('message handling failed', { topic, err });
    }
  });
  mq.on('error', (err) => log.warn('broker connection error', { error: err.message }));
  mq.on('reconnect', () => log.info('reconnecting to the broker', { url: server.url }));

  // aedes has no shared subscriptions, and an embedded broker has one controller anyway.
  const filters = Object.values(controllerFilters).map((f) => (side.embedded ? f : shared(group, f)));
  try {
    await mq.subscribeAsync(filters, { qos: 1 });
  } catch (err) {
    mq.end(true);
    await closeSide(side);
    throw new Error(`cannot subscribe to the device topics on ${server.url}: ${(err as Error).message}`);
  }
  side.embedded?.admitDevices();
  log.info('controller serving', { url: server.url, embedded: side.embedded !== undefined, filters });
  // Subscribe again on every reconnect: Mosquitto 2.0.11 reports the session present after a restart
  // but has lost its shared subscriptions, and mqtt.js does not resubscribe a clean:false session.
  // Then catch up from what devices keep retained (an embedded broker's plain subscriptions get it anyway).
  const sweep = side.embedded ? undefined : new RetainedSweep(mq, log.child('ingest'));
  void sweep?.run();
  mq.on('connect', () => {
    mq.subscribeAsync(filters, { qos: 1 }).then(
      () => sweep?.run(),
      (err: Error) => log.error('cannot subscribe again after reconnecting', { error: err.message }),
    );
  });

  let closing: Promise<void> | undefined;
  return {
    url: server.url,
    counters: () => ({
      onboarding: structuredClone(onboarding.counters),
      ingest: structuredClone(ingest.counters),
      logs: { ...structuredClone(logIngest.counters), deletedByRetention: logStore.deleted },
      ...(side.embedded ? { broker: side.embedded.stats() } : {}),
    }),
    close() {
      closing ??= (async () => {
        await logIngest.flush(); // what was stored is acknowledged before the link goes
        await mq.endAsync();
        await onboarding.idle();
        await closeSide(side);
      })();
      return closing;
    },
  };
}

async function closeSide(side: BrokerSide): Promise<void> {
  await side.provisioner.close?.();
  await side.embedded?.close();
}

/** clean:false with a stable client id: what arrives while the controller restarts waits for it. */
async function connectController(server: ServerInfo, clientId: string): Promise<MqttClient> {
  const ep = { url: server.url, caPem: server.caPem, username: server.controller.username, password: server.controller.password };
  const client = connect(server.url, mqttOptions(ep, { clientId, clean: false }));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      client.once('connect', () => (clearTimeout(timer), resolve()));
      client.once('error', (err) => (clearTimeout(timer), reject(err)));
    });
  } catch (err) {
    client.end(true);
    throw new Error(`cannot connect to the broker at ${server.url} as ${server.controller.username}: ${(err as Error).message}`);
  }
  return client;
}

async function embeddedBroker(state: StateDir, opts: ControllerOptions): Promise<BrokerSide> {
  const previous = state.readServer();
  const accounts = new AccountsFile(state);
  const controller = previous?.controller ?? { username: CONTROLLER_USERNAME, password: newPassword() };
  const onboarding = previous?.onboarding ?? { username: ONBOARD_USERNAME, password: newPassword() };
  // Re-hashing an unchanged account would take rights from connections made with it: only when it differs.
  for (const [acct, role] of [[controller, { kind: 'controller' }], [onboarding, { kind: 'onboard' }]] as const) {
    const have = accounts.lookup(acct.username);
    if (!have || have.role.kind !== role.kind || !checkPassword(acct.password, have.passwordHash)) {
      await accounts.upsert(acct.username, acct.password, role);
    }
  }
  const listen = opts.listen ?? DEFAULT_LISTEN;
  const embedded = await startEmbeddedBroker({
    host: listen.host, port: listen.port, accounts, dataDir: state.path('broker'), log: opts.log.child('broker'),
    ...(opts.tls ? { tls: { certPem: opts.tls.certPem, keyPem: opts.tls.keyPem } } : {}),
  });
  const caPem = opts.tls ? opts.caPem ?? opts.tls.certPem : undefined;
  // A broker on every interface is reached locally on the loopback.
  const url = /^(0\.0\.0\.0|::|\[::\])$/.test(listen.host) ? `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${embedded.port}` : embedded.url;
  const server: ServerInfo = {
    url,
    ...(caPem ? { caPem } : {}),
    ...(opts.publicUrl ?? previous?.publicUrl ? { publicUrl: opts.publicUrl ?? previous?.publicUrl } : {}),
    controller, onboarding, epoch: previous?.epoch ?? 0, embedded: true,
  };
  state.writeServer(server);
  return { server, provisioner: accounts, embedded };
}

async function externalBroker(state: StateDir, opts: ControllerOptions, url: string): Promise<BrokerSide> {
  const previous = state.readServer();
  const admin = opts.dynsecAdmin ?? previous?.dynsecAdmin;
  if (!admin) {
    throw new Error('an external broker needs its dynamic-security admin account (--dynsec-admin USER --dynsec-password-file FILE) to create device accounts');
  }
  const caPem = opts.caPem ?? (previous?.url === url ? previous.caPem : undefined);
  const dynsec = await connectDynsec({ url, ...(caPem ? { caPem } : {}), username: admin.username, password: admin.password });
  try {
    await dynsec.ensureDefaults();
    const controller = previous?.controller ?? { username: CONTROLLER_USERNAME, password: newPassword() };
    const onboarding = previous?.onboarding ?? { username: ONBOARD_USERNAME, password: newPassword() };
    if (opts.dynsecAdmin || previous?.url !== url) {
      // Given the admin (first run, or on purpose): make sure both accounts exist as server.json says.
      await dynsec.upsert(controller.username, controller.password, { kind: 'controller' });
      await dynsec.upsert(onboarding.username, onboarding.password, { kind: 'onboard' });
    }
    const server: ServerInfo = {
      url,
      ...(caPem ? { caPem } : {}),
      ...(opts.publicUrl ?? previous?.publicUrl ? { publicUrl: opts.publicUrl ?? previous?.publicUrl } : {}),
      controller, onboarding, epoch: previous?.epoch ?? 0, embedded: false, dynsecAdmin: admin,
    };
    state.writeServer(server);
    return { server, provisioner: dynsec };
  } catch (err) {
    await dynsec.close();
    throw err;
  }
}
