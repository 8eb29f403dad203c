// Starts FerretDB on its SQLite backend, building it first if needed.
//   npx tsx scripts/ferretdb.ts [--data DIR] [--port N]
// Prints the MongoDB URI and runs until interrupted.
import { parseArgs } from 'node:util';
import { startEmbeddedFerretDB } from '../gateway/store/embedded-ferretdb.ts';

const { values } = parseArgs({ options: { data: { type: 'string', default: '.tributary/data' }, port: { type: 'string', default: '0' } } });
const store = await startEmbeddedFerretDB({ dataDir: values.data!, port: Number(values.port), onLog: (l) => process.stderr.write(l) });
console.log(store.uri);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void store.stop().then(() => process.exit(0)));
