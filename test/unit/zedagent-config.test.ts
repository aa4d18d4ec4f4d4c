// Parsing and checking the device config: every rule, every bad field named by path.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseDeviceConfig } from '../../agents/zedagent/device-config';
import { jsonErrorOffset } from '../../agents/zedagent/json-position';
import type { DeviceConfig } from '../../pubsub/collections/config';

const example = fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8');
const base = (): DeviceConfig => JSON.parse(example) as DeviceConfig;
const parse = (c: unknown) => parseDeviceConfig(JSON.stringify(c, null, 2));
const paths = (c: unknown) => parse(c).errors.map((e) => `${e.path}: ${e.message}`);

const DS = '5d0767ee-0547-4569-b530-387e526f8cb9';
const NEW_ID = '99999999-9999-4999-8999-999999999999';

t.test('the documented example is accepted', async (t) => {
  const r = parseDeviceConfig(example);
  t.same(r.errors, []);
  t.ok(r.config);
  t.equal(r.config?.apps?.length, 2);
  t.match(r.sha256, /^[0-9a-f]{64}$/);
});

t.test('JSON syntax errors give a line and a column', async (t) => {
  const r = parseDeviceConfig('{\n  "version": "1",\n  "apps": [}\n');
  t.equal(r.config, undefined);
  t.equal(r.errors.length, 1);
  t.match(r.errors[0]!.message, /^invalid JSON at line 3, column 12: /);
  t.match(parseDeviceConfig('{"version": ').errors[0]!.message, /invalid JSON at line 1, column 13: Unexpected end of JSON input/);
  t.match(parseDeviceConfig('{\n  "version": "1",\n}').errors[0]!.message, /^invalid JSON at line 3, column 1: /, 'a trailing comma');
});

t.test('the JSON scanner agrees with JSON.parse on what is valid', async (t) => {
  const cases: [string, number | undefined][] = [
    [example, undefined], ['{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"]}', undefined], ['  []  ', undefined],
    ['{"a": 1,}', 8], ['[1 2]', 3], ['{"a" 1}', 5], ['"abc', 4], ['{"a": tru}', 6], ['01', 1], ['{} x', 3], ['', 0],
  ];
  for (const [text, at] of cases) {
    let valid = true;
    try { JSON.parse(text); } catch { valid = false; }
    t.equal(jsonErrorOffset(text), at, JSON.stringify(text));
    t.equal(at === undefined, valid, `JSON.parse agrees on ${JSON.stringify(text)}`);
  }
});

t.test('every bad field is named, not only the first', async (t) => {
  const c = base() as unknown as Record<string, any>;
  c.apps[1].resources.memoryMiB = 2;
  c.apps[0].resources.cpus = 0;
  c.datastores[0].type = 'ftp';
  c.volumes[2].origin = { type: 'copy' };
  c.volumes[0].origin = { type: 'download' };
  c.contentTrees[0].sha256 = 'md5:abc';
  c.apps[0].id = 'not-a-uuid';
  c.apps[0].colour = 'blue';
  delete c.version;
  const got = paths(c);
  t.same(got.sort(), [
    '/apps/0/colour: Unexpected property',
    '/apps/0/id: Expected a UUID (8-4-4-4-12 hex digits), got "not-a-uuid"',
    '/apps/0/resources/cpus: Expected number to be greater than 0',
    '/apps/1/resources/memoryMiB: Expected integer to be greater or equal to 4',
    '/contentTrees/0/sha256: Expected sha256:<64 lowercase hex digits>, got "md5:abc"',
    '/datastores/0/type: Expected one of "http", "https", "registry"',
    '/version: Expected required property',
    '/volumes/0/origin/contentTreeId: Expected required property',
    '/volumes/2/origin/type: Expected one of "blank", "download"',
  ].sort());
});

t.test('references must resolve', async (t) => {
  const c = base();
  c.apps![1]!.volumeRefs[1]!.volumeId = NEW_ID;
  c.volumes![1]!.origin = { type: 'download', contentTreeId: NEW_ID };
  c.contentTrees![0]!.datastoreIds = [DS, NEW_ID];
  c.apps![0]!.networkInstanceIds = [NEW_ID];
  t.same(paths(c).sort(), [
    `/apps/0/networkInstanceIds/0: unknown network instance ${NEW_ID}`,
    `/apps/1/volumeRefs/0/volumeId: the first volume ref is the root disk: volume 7b6a7e1c-2222-4c1e-8a3d-6f1e2d3c4b02 must come from a container content tree`,
    `/apps/1/volumeRefs/1/volumeId: unknown volume ${NEW_ID}`,
    `/contentTrees/0/datastoreIds/1: unknown datastore ${NEW_ID}`,
    `/volumes/1/origin/contentTreeId: unknown content tree ${NEW_ID}`,
  ].sort());
});

t.test('duplicate ids, app names and host ports', async (t) => {
  const c = base();
  c.volumes!.push({ ...c.volumes![0]! });
  c.apps![1]!.name = 'hello';
  c.apps![1]!.ports = [{ container: 80, host: 18081 }, { container: 81, host: 18081, protocol: 'udp' }];
  t.same(paths(c).sort(), [
    '/apps/1/name: duplicate app name "hello" (also /apps/0)',
    '/apps/1/ports/0/host: host port 18081/tcp is already used by /apps/0/ports/0 (app "hello")',
    '/volumes/3/id: duplicate id 7b6a7e1c-1111-4c1e-8a3d-6f1e2d3c4b01 (also /volumes/0)',
  ].sort(), 'the same port over udp is another port');
});

t.test('datastore type must fit the content format; raw needs a sha256', async (t) => {
  const c = base();
  c.datastores!.push({ id: NEW_ID, type: 'http', url: 'http://127.0.0.1:8000/files' });
  c.contentTrees!.push({ id: '88888888-8888-4888-8888-888888888888', datastoreIds: [DS], url: 'x.img', format: 'raw' });
  c.contentTrees![0]!.datastoreIds = [NEW_ID];
  t.same(paths(c).sort(), [
    `/contentTrees/0/datastoreIds/0: a container content tree needs a registry datastore; ${NEW_ID} is type http`,
    `/contentTrees/1/datastoreIds/0: a raw content tree needs an http or https datastore; ${DS} is a registry`,
    '/contentTrees/1/sha256: a raw content tree needs its sha256 (a file has no tag to resolve)',
  ].sort());
});

t.test('volume refs: the root disk has no mountDir, the others need one, no volume twice', async (t) => {
  const c = base();
  c.apps![1]!.volumeRefs = [
    { volumeId: '7b6a7e1c-2222-4c1e-8a3d-6f1e2d3c4b02', mountDir: '/root' },
    { volumeId: '7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03' },
    { volumeId: '7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03', mountDir: '/again' },
  ];
  t.same(paths(c).sort(), [
    '/apps/1/volumeRefs/0/mountDir: the first volume ref is the root disk (the container image) and has no mountDir',
    '/apps/1/volumeRefs/1/mountDir: every volume ref after the first (the root disk) needs a mountDir',
    '/apps/1/volumeRefs/2/volumeId: volume 7b6a7e1c-3333-4c1e-8a3d-6f1e2d3c4b03 is already used by /apps/1/volumeRefs/1',
  ].sort());
});

t.test('env names, signatures and publisher keys', async (t) => {
  const c = base();
  c.apps![0]!.env = { '1BAD': 'x', GOOD: 'y' };
  c.contentTrees![0]!.signature = { keyId: 'nobody', signature: 'AAAA' };
  t.same(paths(c).sort(), [
    '/apps/0/env/1BAD: an environment variable name is letters, digits and _ and does not start with a digit',
    '/contentTrees/0/signature/keyId: unknown publisher key "nobody"',
  ].sort());
});

t.test('config items: a bad value for a known item is an error, an unknown key only reported', async (t) => {
  const c = base();
  c.configItems = { 'timer.download.retry': '0', 'content.signature.required': 'yes', 'no.such.item': '1' };
  const r = parse(c);
  t.same(r.errors, [
    { path: '/configItems/timer.download.retry', message: '"0" must be at least 1' },
    { path: '/configItems/content.signature.required', message: '"yes" must be true or false' },
  ]);
  t.same(r.unknownConfigItems, ['no.such.item']);
  c.configItems = { 'no.such.item': '1' };
  const ok = parse(c);
  t.ok(ok.config, 'an unknown item alone does not refuse the config');
  t.same(ok.unknownConfigItems, ['no.such.item']);
});
