// Nodemailer peer for benchmarks/throughput.py: a pooled transport (maxConnections from the
// config), sending the harness's raw message bytes with an explicit envelope.
// Protocol: argv[2] is a JSON config; prints "WARM" after the warm-up, waits for one line on
// stdin, sends n messages, prints "DONE <wall seconds> <CPU seconds>" for the timed part only.
// bench-supports: implicit-tls (cfg.tls is "none", "starttls" or "implicit"; AUTH with TLS).
"use strict";
const fs = require("fs");
const readline = require("readline");
const net = require("net");
const nodemailer = require("nodemailer");

// Nagle's algorithm off, as every Python client here has it (asyncio sets TCP_NODELAY) and as
// the sink does: otherwise Nodemailer's separate writes of the message and its final dot wait
// for a delayed ACK (~40 ms per message on Linux) and the figure measures that, not the library.
const connect = net.connect;
net.connect = net.createConnection = function (...args) {
  return connect.apply(this, args).setNoDelay(true);
};
// Implicit TLS (secure: true) connects with tls.connect, which does not go through net.connect.
const tls = require("tls");
const tlsConnect = tls.connect;
tls.connect = function (...args) {
  const socket = tlsConnect.apply(this, args);
  socket.setNoDelay(true);
  return socket;
};

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const raw = fs.readFileSync(cfg.raw);
  const mode = cfg.tls || (cfg.secure ? "starttls" : "none");
  const secure = mode !== "none";
  const transporter = nodemailer.createTransport({
    host: cfg.host,
    port: cfg.port,
    secure: mode === "implicit", // TLS from the first byte
    ignoreTLS: !secure,
    requireTLS: mode === "starttls",
    auth: secure ? { user: cfg.username, pass: cfg.password } : undefined,
    authMethod: "PLAIN",
    tls: secure ? { ca: [fs.readFileSync(cfg.ca_file)], servername: "localhost" } : undefined,
    pool: true,
    maxConnections: cfg.connections,
    maxMessages: Infinity,
  });
  const mail = { envelope: { from: cfg.sender, to: [cfg.recipient] }, raw };
  const sendMany = async (count) => {
    let left = count;
    const worker = async () => {
      while (left > 0) {
        left -= 1;
        await transporter.sendMail(mail);
      }
    };
    await Promise.all(Array.from({ length: cfg.connections }, worker));
  };
  await sendMany(cfg.warmup);
  process.stdout.write("WARM\n");
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once("line", resolve));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await sendMany(cfg.n);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`DONE ${wall} ${(cpu.user + cpu.system) / 1e6}\n`);
  lines.close();
  transporter.close();
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
