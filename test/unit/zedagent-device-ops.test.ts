// Reboot and shutdown counters: the first value is a baseline, a change acts once.
import t from 'tap';
import { decideOps } from '../../agents/zedagent/device-ops';

t.test('counter table', async (t) => {
  const rows: Array<[string, Parameters<typeof decideOps>[0], Parameters<typeof decideOps>[1], string | undefined, object]> = [
    ['no counters', {}, {}, undefined, {}],
    ['first reboot counter: baseline only', {}, { reboot: { counter: 3 } }, undefined, { reboot: 3 }],
    ['same counter again', { reboot: 3 }, { reboot: { counter: 3 } }, undefined, { reboot: 3 }],
    ['changed: reboot once', { reboot: 3 }, { reboot: { counter: 4 } }, 'reboot', { reboot: 4 }],
    ['a jump of several acts once', { reboot: 3 }, { reboot: { counter: 9 } }, 'reboot', { reboot: 9 }],
    ['a lower value is a change too', { reboot: 3 }, { reboot: { counter: 1 } }, 'reboot', { reboot: 1 }],
    ['counter removed: nothing, record kept', { reboot: 3 }, {}, undefined, { reboot: 3 }],
    ['shutdown changed', { shutdown: 1 }, { shutdown: { counter: 2 } }, 'shutdown', { shutdown: 2 }],
    ['both changed: shutdown wins, both recorded', { reboot: 1, shutdown: 1 }, { reboot: { counter: 2 }, shutdown: { counter: 2 } }, 'shutdown', { reboot: 2, shutdown: 2 }],
  ];
  for (const [name, prev, wanted, act, record] of rows) {
    const d = decideOps(prev, wanted);
    t.equal(d.act, act, `${name}: act`);
    t.same(d.record, record, `${name}: record`);
  }
});
