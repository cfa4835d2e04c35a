<?php
/**
 * A typical PHPMailer script: an order confirmation with an attachment, sent over SMTP with
 * authentication and STARTTLS. smtpkit_equivalent.py beside it does the same, option by option;
 * README.md maps every option.
 *
 * Run with: composer require phpmailer/phpmailer && php phpmailer_script.php
 */

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;
use PHPMailer\PHPMailer\Exception;

require __DIR__ . '/vendor/autoload.php';

$mail = new PHPMailer(true);             // true: throw exceptions on errors

try {
    // Server
    $mail->SMTPDebug  = SMTP::DEBUG_OFF;   // SMTP::DEBUG_SERVER to print the conversation
    $mail->isSMTP();
    $mail->Host       = 'smtp.example.com';
    $mail->SMTPAuth   = true;
    $mail->Username   = 'orders@example.com';
    $mail->Password   = getenv('SMTP_PASSWORD');
    $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;   // ENCRYPTION_SMTPS for port 465
    $mail->Port       = 587;
    $mail->CharSet    = PHPMailer::CHARSET_UTF8;

    // Addresses
    $mail->setFrom('orders@example.com', 'Example Shop');
    $mail->addAddress('ann@example.org', 'Ann Lee');
    $mail->addReplyTo('support@example.com', 'Example Support');
    $mail->addCC('accounts@example.com');
    $mail->addBCC('archive@example.com');

    // Attachments
    $mail->addAttachment(__DIR__ . '/terms.txt');                     // as it is named
    $mail->addAttachment(__DIR__ . '/terms.txt', 'terms-2027.txt');   // under another name

    // Content
    $mail->isHTML(true);
    $mail->Subject = 'Your order #1001';
    $mail->Body    = '<p>Hello Ann,</p><p>thanks for your order <b>#1001</b>.</p>';
    $mail->AltBody = "Hello Ann,\n\nthanks for your order #1001.";

    $mail->send();
    echo "Message sent\n";
} catch (Exception $e) {
    echo "Message could not be sent. Mailer Error: {$mail->ErrorInfo}\n";
    exit(1);
}
