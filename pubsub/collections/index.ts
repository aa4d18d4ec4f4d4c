// Every collection type on the zedbox bus, declared once. Agents import their
// types from here; the bus validates every value it sends or receives against them.
import { makeCatalog } from '../catalog';
import { AgentStatusCollection } from './agents';

export * from './agents';

export const CATALOG = makeCatalog([AgentStatusCollection]);
