// Every collection type on the zedbox bus, declared once. Agents import their
// types from here; the bus validates every value it sends or receives against them.
import { makeCatalog } from '../catalog';
import { AgentStatusCollection } from './agents';
import { APP_COLLECTIONS } from './apps';
import { CONFIG_COLLECTIONS } from './config';
import { CONTENT_COLLECTIONS } from './content';
import { DEVICE_STATE_COLLECTIONS } from './device-state';
import { LOG_COLLECTIONS } from './logs';
import { NETWORK_COLLECTIONS } from './network';
import { VOLUME_COLLECTIONS } from './volumes';

export * from './agents';
export * from './apps';
export * from './common';
export * from './config';
export * from './config-items';
export * from './content';
export * from './device-state';
export * from './logs';
export * from './network';
export * from './volumes';

export const CATALOG = makeCatalog([
  AgentStatusCollection, ...CONFIG_COLLECTIONS, ...CONTENT_COLLECTIONS, ...VOLUME_COLLECTIONS, ...APP_COLLECTIONS, ...DEVICE_STATE_COLLECTIONS,
  ...NETWORK_COLLECTIONS, ...LOG_COLLECTIONS,
]);
