<?php
// PHPMailer peer for benchmarks/throughput.py: one connection kept alive (SMTPKeepAlive),
// building and sending the same small text message each time (PHPMailer has no raw-bytes API).
// Protocol: argv[1] is a JSON config; prints "WARM" after the warm-up, waits for one line on
// stdin, sends n messages, prints "DONE <wall seconds> <CPU seconds>" for the timed part only.
// bench-supports: implicit-tls ($cfg['tls'] is "none", "starttls" or "implicit"; AUTH with TLS).
// TCP_NODELAY is set (as every Python client here has it, asyncio by default): without it the
// separate writes of the message and its final dot wait for a delayed ACK, ~40 ms each.
// Uses the Debian package libphp-phpmailer (apt-get install php-cli libphp-phpmailer).
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;

$cfg = json_decode($argv[1], true);
$mode = $cfg['tls'] ?? ($cfg['secure'] ? 'starttls' : 'none');
$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = $cfg['host'];
$mail->Port = $cfg['port'];
$mail->SMTPKeepAlive = true;
$mail->Hostname = 'bench.localhost';
$mail->Helo = 'bench.localhost';
$mail->Timeout = 30;
if ($mode !== 'none') {
    // SMTPS is TLS from the first byte; STARTTLS upgrades after EHLO.
    $mail->SMTPSecure = $mode === 'implicit' ? PHPMailer::ENCRYPTION_SMTPS : PHPMailer::ENCRYPTION_STARTTLS;
    $mail->SMTPAuth = true;
    $mail->AuthType = 'PLAIN';
    $mail->Username = $cfg['username'];
    $mail->Password = $cfg['password'];
    $mail->SMTPOptions = ['ssl' => [
        'cafile' => $cfg['ca_file'], 'verify_peer' => true, 'verify_peer_name' => true,
        'peer_name' => 'localhost',
    ], 'socket' => ['tcp_nodelay' => true]];
} else {
    $mail->SMTPOptions = ['socket' => ['tcp_nodelay' => true]];
    $mail->SMTPSecure = '';
    $mail->SMTPAutoTLS = false;
    $mail->SMTPAuth = false;
}
$mail->setFrom($cfg['sender']);
$mail->Subject = $cfg['subject'];
$mail->Body = $cfg['body'];
$mail->CharSet = PHPMailer::CHARSET_UTF8;

function send_one($mail, $recipient) {
    $mail->clearAddresses();
    $mail->addAddress($recipient);
    $mail->send();
}

function cpu_seconds() {
    $u = getrusage();
    return $u['ru_utime.tv_sec'] + $u['ru_utime.tv_usec'] / 1e6
        + $u['ru_stime.tv_sec'] + $u['ru_stime.tv_usec'] / 1e6;
}

for ($i = 0; $i < $cfg['warmup']; $i++) {
    send_one($mail, $cfg['recipient']);
}
fwrite(STDOUT, "WARM\n");
fflush(STDOUT);
fgets(STDIN);
$cpu0 = cpu_seconds();
$t0 = hrtime(true);
for ($i = 0; $i < $cfg['n']; $i++) {
    send_one($mail, $cfg['recipient']);
}
$wall = (hrtime(true) - $t0) / 1e9;
$cpu = cpu_seconds() - $cpu0;
fwrite(STDOUT, "DONE $wall $cpu\n");
$mail->smtpClose();
