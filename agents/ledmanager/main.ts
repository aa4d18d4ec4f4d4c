// ledmanager: shows the device's state on an LED as EVE's blink codes, from the
// LedBlinkCounter collection zedagent drives and nim's DeviceNetworkStatus.
// Wiring only: the code is led-code.ts, the pattern blink-plan.ts, the timing
// blinker.ts, the LED led-driver.ts.
import {
  DeviceNetworkStatusCollection, LedBlinkCounterCollection, ledMeaning, type DeviceNetworkStatus, type LedBlinkCounter,
} from '../../pubsub/collections';
import { untilAborted, type AgentSpec } from '../agent';
import { Blinker } from './blinker';
import { chooseLedCode } from './led-code';
import { NoLed, SysfsLed, type Led } from './led-driver';

export const ledmanager: AgentSpec = {
  name: 'ledmanager',
  summary: 'shows the device state as EVE\'s LED blink codes (sysfs LED, or the log)',
  help: `Shows the code in LedBlinkCounter (zedagent) as N blinks of 200 ms on and 200 ms off, then 1.2 s
dark, repeated (EVE's codes: 2 connecting to the controller, 3 connected but not onboarded, 4 onboarded,
10/17/18 onboarding failed, 15 bad controller signature), except that 1 (no usable address on any
management port, from nim's DeviceNetworkStatus) overrides them. The LED is ZEDBOX_LED=/sys/class/leds/<name>
(its trigger is set to none); without one, each change of code is logged instead.`,
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
    let link: Readonly<LedBlinkCounter> | undefined;
    let net: Readonly<DeviceNetworkStatus> | undefined;
    const show = (): void => {
      const { code, reason } = chooseLedCode(link, net);
      if (code === blinker.current) return;
      blinker.show(code);
      ctx.log.info(`LED code ${code}: ${ledMeaning(code)}`, { reason, led: ledDir ?? 'none' });
    };
    ctx.subscribe(LedBlinkCounterCollection, {
      create: (_k, v) => { link = v; show(); },
      modify: (_k, v) => { link = v; show(); },
      delete: () => { link = undefined; show(); },
    });
    ctx.subscribe(DeviceNetworkStatusCollection, {
      create: (_k, v) => { net = v; show(); },
      modify: (_k, v) => { net = v; show(); },
      delete: () => { net = undefined; show(); },
    });
    blinker.start();
    try {
      await untilAborted(ctx.signal);
    } finally {
      blinker.stop();
    }
  },
};
