// The rules of a device config the schema cannot express: ids unique, every
// reference resolves, a content tree's format fits its datastores, names and
// host ports unique. Each error names the field by its JSON pointer. Pure.
import type { DeviceConfig } from '../../pubsub/collections/config';
import { portConfigProblems } from '../../pubsub/collections/network';

export interface RuleError { path: string; message: string }

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkRules(c: DeviceConfig): RuleError[] {
  const errors: RuleError[] = [];
  const err = (path: string, message: string) => errors.push({ path, message });
  const datastores = indexById(c.datastores ?? [], '/datastores', err);
  const trees = indexById(c.contentTrees ?? [], '/contentTrees', err);
  const volumes = indexById(c.volumes ?? [], '/volumes', err);
  indexById(c.apps ?? [], '/apps', err);
  const networks = indexById(c.networkInstances ?? [], '/networkInstances', err);
  const keys = indexById(c.publisherKeys ?? [], '/publisherKeys', err);
  uniqueNames(c.networkInstances ?? [], '/networkInstances', 'network instance', err);
  for (const p of portConfigProblems(c.networkPorts ?? [])) err(p.path, p.message);

  for (const [i, t] of (c.contentTrees ?? []).entries()) {
    const at = `/contentTrees/${i}`;
    for (const [j, id] of t.datastoreIds.entries()) {
      const ds = datastores.get(id);
      if (!ds) err(`${at}/datastoreIds/${j}`, `unknown datastore ${id}`);
      else if (t.format === 'container' && ds.type !== 'registry') err(`${at}/datastoreIds/${j}`, `a container content tree needs a registry datastore; ${id} is type ${ds.type}`);
      else if (t.format === 'raw' && ds.type === 'registry') err(`${at}/datastoreIds/${j}`, `a raw content tree needs an http or https datastore; ${id} is a registry`);
    }
    if (t.format === 'raw' && !t.sha256) err(`${at}/sha256`, 'a raw content tree needs its sha256 (a file has no tag to resolve)');
    if (t.signature && !keys.has(t.signature.keyId)) err(`${at}/signature/keyId`, `unknown publisher key ${JSON.stringify(t.signature.keyId)}`);
  }
  for (const [i, v] of (c.volumes ?? []).entries()) {
    if (v.origin.type === 'download' && !trees.has(v.origin.contentTreeId)) err(`/volumes/${i}/origin/contentTreeId`, `unknown content tree ${v.origin.contentTreeId}`);
  }
  uniqueNames(c.apps ?? [], '/apps', 'app', err);
  checkHostPorts(c, err);
  for (const [i, app] of (c.apps ?? []).entries()) {
    const at = `/apps/${i}`;
    checkVolumeRefs(app.volumeRefs, at, volumes, trees, err);
    for (const [j, id] of (app.networkInstanceIds ?? []).entries()) {
      if (!networks.has(id)) err(`${at}/networkInstanceIds/${j}`, `unknown network instance ${id}`);
    }
    for (const name of Object.keys(app.env ?? {})) {
      if (!ENV_NAME.test(name)) err(`${at}/env/${name}`, 'an environment variable name is letters, digits and _ and does not start with a digit');
    }
  }
  return errors;
}

type Err = (path: string, message: string) => void;
type Vol = NonNullable<DeviceConfig['volumes']>[number];
type Tree = NonNullable<DeviceConfig['contentTrees']>[number];
type App = NonNullable<DeviceConfig['apps']>[number];

function checkVolumeRefs(refs: App['volumeRefs'], at: string, volumes: Map<string, Vol>, trees: Map<string, Tree>, err: Err): void {
  const used = new Map<string, number>();
  for (const [j, ref] of refs.entries()) {
    const p = `${at}/volumeRefs/${j}`;
    const first = used.get(ref.volumeId);
    if (first !== undefined) err(`${p}/volumeId`, `volume ${ref.volumeId} is already used by ${at}/volumeRefs/${first}`);
    used.set(ref.volumeId, j);
    const vol = volumes.get(ref.volumeId);
    if (!vol) err(`${p}/volumeId`, `unknown volume ${ref.volumeId}`);
    if (j === 0) {
      if (ref.mountDir !== undefined) err(`${p}/mountDir`, 'the first volume ref is the root disk (the container image) and has no mountDir');
      const tree = vol?.origin.type === 'download' ? trees.get(vol.origin.contentTreeId) : undefined;
      if (vol && (!tree || tree.format !== 'container')) err(`${p}/volumeId`, `the first volume ref is the root disk: volume ${ref.volumeId} must come from a container content tree`);
    } else if (ref.mountDir === undefined) {
      err(`${p}/mountDir`, 'every volume ref after the first (the root disk) needs a mountDir');
    }
  }
}

function checkHostPorts(c: DeviceConfig, err: Err): void {
  const taken = new Map<string, string>();
  for (const [i, app] of (c.apps ?? []).entries()) {
    for (const [j, port] of (app.ports ?? []).entries()) {
      const proto = port.protocol ?? 'tcp';
      const key = `${port.host}/${proto}`;
      const holder = taken.get(key);
      if (holder) err(`/apps/${i}/ports/${j}/host`, `host port ${key} is already used by ${holder}`);
      else taken.set(key, `/apps/${i}/ports/${j} (app ${JSON.stringify(app.name)})`);
    }
  }
}

function indexById<T extends { id: string }>(items: readonly T[], at: string, err: Err): Map<string, T> {
  const out = new Map<string, T>();
  const where = new Map<string, number>();
  for (const [i, item] of items.entries()) {
    const first = where.get(item.id);
    if (first !== undefined) err(`${at}/${i}/id`, `duplicate id ${item.id} (also ${at}/${first})`);
    else { out.set(item.id, item); where.set(item.id, i); }
  }
  return out;
}

function uniqueNames(items: readonly { name: string }[], at: string, what: string, err: Err): void {
  const where = new Map<string, number>();
  for (const [i, item] of items.entries()) {
    const first = where.get(item.name);
    if (first !== undefined) err(`${at}/${i}/name`, `duplicate ${what} name ${JSON.stringify(item.name)} (also ${at}/${first})`);
    else where.set(item.name, i);
  }
}
