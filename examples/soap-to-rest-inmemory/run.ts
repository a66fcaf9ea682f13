/** `npx tsx examples/soap-to-rest-inmemory/run.ts`: sends the SOAP samples through the conversion routes. */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Engine } from '../../lib/index.js';
import { soapToRestRoutes } from './routes.js';

const engine = new Engine({ logger: pino({ level: 'warn' }) });
engine.addRoutes(soapToRestRoutes());
await engine.start();
for (const name of ['dotnet-asmx-request.xml', 'wcf-request-12.xml', 'jaxws-request.xml', 'soaplite-request.xml']) {
  const request = readFileSync(new URL(`../../spec/fixtures/soap/${name}`, import.meta.url), 'utf8');
  const reply = await engine.request<string>('direct:soap-orders', request);
  process.stdout.write(`--- ${name}\n${reply}\n`);
}
await engine.stop();
