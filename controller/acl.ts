// Who may touch which topics: the one description of the API's access rules.
// The embedded broker enforces it directly; for Mosquitto the same rules become
// dynamic-security roles. A device reads only its own "down" subtree and writes
// only its own "up" subtree; an onboarding account may only ask and hear answers.
import { API_ROOT, controllerFilters, topics } from '../api/topics';

export type BrokerRole =
  | { kind: 'controller' }
  | { kind: 'onboard' }
  | { kind: 'device'; deviceId: string };

export interface AclRule {
  /** publish: the account may send to topics matching the filter; subscribe: may subscribe to and receive them. */
  action: 'publish' | 'subscribe';
  filter: string;
}

export function aclRules(role: BrokerRole): AclRule[] {
  switch (role.kind) {
    case 'controller':
      return [
        { action: 'publish', filter: `${API_ROOT}/#` },
        { action: 'subscribe', filter: `${API_ROOT}/#` },
      ];
    case 'onboard':
      return [
        { action: 'publish', filter: controllerFilters.onboard },
        { action: 'subscribe', filter: `${API_ROOT}/onboard/+/reply` },
      ];
    case 'device':
      return [
        { action: 'publish', filter: topics.deviceUp(role.deviceId) },
        { action: 'subscribe', filter: topics.deviceDown(role.deviceId) },
      ];
  }
}

/** Does an MQTT topic (no wildcards) match a filter? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i < t.length || i === t.length; // '#' also matches the parent level
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Is a subscription filter within a rule's filter (every topic it can match, the rule matches too)? */
export function filterWithin(rule: string, sub: string): boolean {
  const r = rule.split('/');
  const s = sub.split('/');
  for (let i = 0; i < r.length; i++) {
    if (r[i] === '#') return true;
    if (i >= s.length) return false;
    if (s[i] === '#') return false; // the subscription reaches further than the rule
    if (r[i] === '+') continue;
    if (s[i] === '+' || s[i] !== r[i]) return false;
  }
  return r.length === s.length;
}

export function mayPublish(role: BrokerRole, topic: string): boolean {
  return aclRules(role).some((r) => r.action === 'publish' && topicMatches(r.filter, topic));
}

/** Shared subscriptions ($share/<group>/<filter>) are judged by their filter. */
export function maySubscribe(role: BrokerRole, filter: string): boolean {
  const m = /^\$share\/[^/]+\/(.+)$/.exec(filter);
  const f = m ? m[1]! : filter;
  return aclRules(role).some((r) => r.action === 'subscribe' && filterWithin(r.filter, f));
}
