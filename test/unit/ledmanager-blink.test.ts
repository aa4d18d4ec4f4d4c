// EVE's blink codes on a stand-in sysfs LED, on a virtual clock: for each code,
// N blinks of 200 ms on and 200 ms off, then 1200 ms dark; a new code starts at
// the end of the cycle in progress; the kernel trigger is switched off.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { BLINK_OFF_MS, BLINK_ON_MS, PAUSE_MS, blinkCycle } from '../../agents/ledmanager/blink-plan';
import { Blinker } from '../../agents/ledmanager/blinker';
import { SysfsLed } from '../../agents/ledmanager/led-driver';
import { LED_CODES } from '../../pubsub/collections';

/** A virtual clock: timers run when the test advances time. */
function virtualClock() {
  let now = 0;
  const queue: Array<{ at: number; fn: () => void }> = [];
  return {
    get now() { return now; },
    timer: (fn: () => void, ms: number) => { queue.push({ at: now + ms, fn }); },
    /** Runs every timer due up to `until`. */
    runUntil(until: number) {
      for (;;) {
        queue.sort((a, b) => a.at - b.at);
        const next = queue[0];
        if (!next || next.at > until) break;
        queue.shift();
        now = next.at;
        next.fn();
      }
      now = until;
    },
  };
}

/** A stand-in for /sys/class/leds/<name>, and what the LED showed when, read back from its brightness file. */
function fakeLed(t: { teardown(fn: () => void): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'led-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'brightness'), '0');
  fs.writeFileSync(path.join(dir, 'trigger'), '[heartbeat] none');
  return dir;
}

/** Samples the LED file every 100 ms (every step is a multiple of 200 ms) over one stretch of time. */
function sample(dir: string, clock: ReturnType<typeof virtualClock>, from: number, to: number): string {
  let out = '';
  for (let at = from; at < to; at += 100) {
    clock.runUntil(at);
    out += fs.readFileSync(path.join(dir, 'brightness'), 'utf8').trim() === '1' ? '#' : '.';
  }
  return out;
}

t.test('one cycle of each code', async (t) => {
  for (const code of Object.keys(LED_CODES).map(Number)) {
    const cycle = blinkCycle(code);
    t.equal(cycle.filter((s) => s.brightness === 1).length, code, `code ${code}: ${code} blinks`);
    t.equal(cycle.reduce((n, s) => n + s.ms, 0), code * (BLINK_ON_MS + BLINK_OFF_MS) + PAUSE_MS, `code ${code}: then a ${PAUSE_MS} ms pause`);
  }
});

t.test('the LED file shows the pattern, cycle after cycle, and a new code waits for the cycle to end', async (t) => {
  const dir = fakeLed(t);
  const clock = virtualClock();
  const blinker = new Blinker(new SysfsLed(dir), clock.timer);
  t.equal(fs.readFileSync(path.join(dir, 'trigger'), 'utf8'), 'none', 'the kernel trigger is switched off');
  blinker.show(3);
  blinker.start();
  // 3 blinks: on 200 / off 200, three times, then 1200 ms dark; each character is 100 ms.
  const three = '##..##..##..' + '.'.repeat(12);
  t.equal(sample(dir, clock, 0, 2400), three, 'code 3, first cycle');
  t.equal(sample(dir, clock, 2400, 4800), three, 'code 3, second cycle');
  clock.runUntil(4900); // in the middle of a blink of the third cycle
  blinker.show(1);
  t.equal(sample(dir, clock, 4900, 7200), '#..##..##..' + '.'.repeat(12), 'the cycle in progress ends as code 3');
  t.equal(sample(dir, clock, 7200, 8800), '##..' + '.'.repeat(12), 'then code 1');
  blinker.stop();
  t.equal(fs.readFileSync(path.join(dir, 'brightness'), 'utf8'), '0', 'stopped: dark');
});

t.test('a directory without a brightness file is not an LED', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'led-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.throws(() => new SysfsLed(dir), /is not an LED: it has no brightness file/);
});
