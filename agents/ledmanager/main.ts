// ledmanager: shows the device's state on an LED as EVE's blink codes, from the
// LedBlinkCounter collection zedagent drives (nim will add the address codes).
// Wiring only: the pattern is blink-plan.ts, the timing blinker.ts, the LED led-driver.ts.
import { LedBlinkCounterCollection, ledMeaning } from '../../pubsub/collections';
import { untilAborted, type AgentSpec } from '../agent';
import { Blinker } from './blinker';
import { NoLed, SysfsLed, type Led } from './led-driver';

export const ledmanager: AgentSpec = {
  name: 'ledmanager',
  summary: 'shows the device state as EVE\'s LED blink codes (sysfs LED, or the log)',
  help: `Shows the code in LedBlinkCounter (zedagent) as N blinks of 200 ms on and 200 ms off, then 1.2 s
dark, repeated (EVE's codes: 2 connecting to the controller, 3 connected but not onboarded, 4 onboarded,
10/17/18 onboarding failed, 15 bad controller signature). The LED is ZEDBOX_LED=/sys/class/leds/<name>
(its trigger is set to none); without one, each change of code is logged instead.

Not yet: the address codes (1, waiting for an address; 5, radio silence) come with nim (issue 5).`,
  async run(ctx) {
    const ledDir = process.env.ZEDBOX_LED;
    let led: Led = new NoLed();
    if (ledDir) {
      try {
        led = new SysfsLed(ledDir);
      } catch (err) {
        ctx.log.error('cannot use the LED; logging the code instead', { led: ledDir, error: (err as Error).message });
      }
    }
    const blinker = new Blinker(led, (fn, ms) => ctx.setTimeout(fn, ms));
    const show = (counter: number, reason: string): void => {
      if (counter === blinker.current) return;
      blinker.show(counter);
      ctx.log.info(`LED code ${counter}: ${ledMeaning(counter)}`, { reason, led: ledDir ?? 'none' });
    };
    ctx.subscribe(LedBlinkCounterCollection, {
      create: (_k, v) => show(v.counter, v.reason),
      modify: (_k, v) => show(v.counter, v.reason),
      delete: () => show(0, 'zedagent withdrew its code'),
    });
    blinker.start();
    try {
      await untilAborted(ctx.signal);
    } finally {
      blinker.stop();
    }
  },
};
