// Runs dynalite on 127.0.0.1, port chosen by the OS, and prints {"port": N} once listening.
// Usage: node dynalite_launch.js MODULES_DIR [DATA_PATH]. Exits on SIGTERM/SIGINT or when stdin
// closes, so it never outlives the process that started it.
'use strict';
const path = require('path');

const [modulesDir, dataPath] = process.argv.slice(2);
const dynalite = require(path.join(modulesDir, 'dynalite'));

const options = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
if (dataPath) options.path = dataPath;
const server = dynalite(options);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // dynalite's close() also closes LevelDB; do not wait forever on a stuck client.
  setTimeout(() => process.exit(0), 3000).unref();
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  server.close(() => process.exit(0));
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.on('error', stop);
process.stdin.resume();

server.on('error', (err) => {
  process.stderr.write(`dynalite: ${err.message}\n`);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
