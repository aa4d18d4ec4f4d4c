// Where port configurations come from besides the controller: files on the device
// (<config>/DevicePortConfig/*.json, each a DevicePortConfig or just { "ports": [...] })
// and the last resort (DHCP on every ethernet port). A bad file is reported with its
// name and the field, and ignored; the other files still count.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { schemaErrors } from '../../pubsub/catalog';
import { DevicePortConfigCollection, portConfigProblems, type NetworkPortConfig } from '../../pubsub/collections/network';
import { isDevicePort, type HostLink } from './host-observer';

export const LOCAL_DIR = 'DevicePortConfig';

export interface LocalConfigs {
  /** Port sets of the files that are good, in file-name order. */
  configs: { file: string; ports: NetworkPortConfig[] }[];
  /** One line per bad file: "DevicePortConfig/x.json: /ports/0/cost: Expected ...". */
  errors: string[];
}

/** Reads every *.json in <config>/DevicePortConfig (a missing directory is no files). */
export function readLocalConfigs(configDir: string): LocalConfigs {
  const dir = path.join(configDir, LOCAL_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { configs: [], errors: [] };
    return { configs: [], errors: [`${LOCAL_DIR}: cannot read the directory: ${(err as Error).message}`] };
  }
  const out: LocalConfigs = { configs: [], errors: [] };
  for (const name of names) {
    const rel = `${LOCAL_DIR}/${name}`;
    let value: unknown;
    try {
      value = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    } catch (err) {
      out.errors.push(`${rel}: ${err instanceof SyntaxError ? 'not JSON: ' : ''}${(err as Error).message}`);
      continue;
    }
    const problems = localProblems(value);
    if (problems.length) out.errors.push(...problems.map((p) => `${rel}: ${p}`));
    else out.configs.push({ file: rel, ports: (value as { ports: NetworkPortConfig[] }).ports });
  }
  return out;
}

/** What is wrong with a file's content, as "path: message" (nothing: it is good). */
export function localProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ['/: must be an object with "ports"'];
  const v = value as Record<string, unknown>;
  if (v.key !== undefined && v.key !== 'local') return [`/key: must be "local" or absent (a file on the device cannot speak for "${String(v.key)}")`];
  const errors = schemaErrors(DevicePortConfigCollection, { ...v, key: 'local' });
  if (errors.length) return errors;
  return portConfigProblems((v as { ports: NetworkPortConfig[] }).ports, '/ports').map((p) => `${p.path}: ${p.message}`);
}

/** A cheap fingerprint of the directory: names, sizes and times. A change means read it again. */
export function localSignature(configDir: string): string {
  const dir = path.join(configDir, LOCAL_DIR);
  try {
    return fs.readdirSync(dir).sort().map((n) => {
      try {
        const s = fs.statSync(path.join(dir, n));
        return `${n}:${s.size}:${s.mtimeMs}`;
      } catch {
        return n;
      }
    }).join('|');
  } catch {
    return '';
  }
}

/** EVE's last resort: DHCP on every ethernet port, all of them management ports. */
export function lastResortPorts(links: readonly HostLink[]): NetworkPortConfig[] {
  return links
    .filter(isDevicePort)
    .map((l) => l.ifName)
    .sort()
    .map((ifName) => ({ ifName, management: true, cost: 0, addressing: { type: 'dhcp' as const } }));
}
