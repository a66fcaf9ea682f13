import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';

/**
 * Perl's SOAP::Lite (Debian package `libsoap-lite-perl`) as a SOAP client and server that
 * nobody here wrote. Missing module = failing test (CI must install the package).
 */
export function requireSoapLite(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('perl', ['-MSOAP::Lite', '-MSOAP::Transport::HTTP', '-MJSON::PP', '-e', '1'], { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`Perl SOAP::Lite is needed for this test: apt-get install -y libsoap-lite-perl (${stderr.trim().split('\n')[0] ?? err.message})`));
      else resolve();
    });
  });
}

const CLIENT = String.raw`
use strict; use warnings;
use SOAP::Lite; use JSON::PP;
my ($url, $version, $op, $ns, $action, $argsJson) = @ARGV;
# the version first: SOAP::Lite builds its serializer from it
SOAP::Lite->soapversion($version);
my $soap = SOAP::Lite->proxy($url, timeout => 10);
$soap->default_ns($ns);
$soap->on_action(sub { return $action });
$soap->on_fault(sub { my ($s, $res) = @_; return $res; });
my $args = decode_json($argsJson);
my @params = map { SOAP::Data->name($_->[0] => $_->[1]) } @$args;
my $res = $soap->call($op => @params);
my %out = (status => $soap->transport->status);
if (!ref $res) { $out{error} = "$res"; }
elsif ($res->fault) {
  $out{faultcode} = $res->faultcode // $res->valueof('//Fault/Code/Value'); $out{faultstring} = $res->faultstring;
  my $code = $res->valueof('//detail/error/code') // $res->valueof('//Detail/error/code');
  $out{busbarCode} = $code if defined $code;
}
else {
  my $body = $res->valueof('//Body/[1]');
  $out{result} = $body;
}
print encode_json(\%out);
`;

const WSDL_CLIENT = String.raw`
use strict; use warnings;
use SOAP::Lite; use JSON::PP;
my ($wsdl) = @ARGV;
my $svc = SOAP::Lite->service($wsdl);
$svc->on_fault(sub { my ($s, $res) = @_; die ref $res ? $res->faultstring : $res; });
my $r = $svc->GetOrder('7');
print encode_json({ result => $r });
`;

/** Call a SOAP operation with SOAP::Lite; the answer as JSON (result, or faultcode/faultstring/status). */
export function perlSoapCall(url: string, opts: { version?: '1.1' | '1.2'; operation: string; namespace: string; action: string; args: Array<[string, string | number]> }): Promise<Record<string, unknown>> {
  return perl(CLIENT, [url, opts.version ?? '1.1', opts.operation, opts.namespace, opts.action, JSON.stringify(opts.args)]);
}

/** Let SOAP::Lite read the WSDL at `wsdlUrl` and call GetOrder through the stub it builds. */
export function perlWsdlCall(wsdlUrl: string): Promise<Record<string, unknown>> {
  return perl(WSDL_CLIENT, [wsdlUrl]);
}

function perl(script: string, args: string[]): Promise<Record<string, unknown>> {
  const dir = tempDir('busbar-perl-');
  const file = join(dir.path, 'client.pl');
  writeFileSync(file, script);
  return new Promise((resolve, reject) => {
    execFile('perl', [file, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      dir.cleanup();
      if (err) return reject(new Error(`perl failed: ${stderr || err.message}`));
      try {
        resolve(JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        reject(new Error(`perl printed no JSON: ${stdout} ${stderr}`));
      }
    });
  });
}

const SERVER = String.raw`
use strict; use warnings;
use SOAP::Transport::HTTP;

package Legacy;
use SOAP::Lite;
# with this parent, the request's SOM is passed as the last argument
our @ISA = ('SOAP::Server::Parameters');
my %orders = ('7' => ['ACME', '99.50'], '8' => ['Initech', '12.00']);
sub GetOrder {
  my ($class, @args) = @_;
  my $som = pop @args;
  my $id = $som->valueof('//GetOrder/id');
  die SOAP::Fault->faultcode('Client')->faultstring("no order $id") unless exists $orders{$id};
  return (SOAP::Data->name(id => $id), SOAP::Data->name(customer => $orders{$id}[0]), SOAP::Data->name(total => $orders{$id}[1]));
}
sub Crash { die "legacy system exploded\n"; }

package main;
$| = 1;
my $d = SOAP::Transport::HTTP::Daemon->new(LocalAddr => '127.0.0.1', LocalPort => 0, Reuse => 1)
  ->dispatch_to('Legacy')->dispatch_with({ 'urn:legacy:orders' => 'Legacy' });
print $d->url, "\n";
$d->handle;
`;

/** A SOAP::Lite HTTP daemon (SOAP 1.1) with GetOrder and Crash; resolves with its URL. */
export async function startPerlSoapServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = tempDir('busbar-perl-');
  const file = join(dir.path, 'server.pl');
  writeFileSync(file, SERVER);
  const child: ChildProcess = spawn('perl', [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`perl SOAP server did not start: ${err}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`perl SOAP server exited (${code}): ${err}`));
    });
  });
  return {
    url: url.replace('localhost', '127.0.0.1'),
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        if (child.exitCode !== null || child.signalCode !== null) {
          dir.cleanup();
          return resolve();
        }
        child.once('exit', () => {
          dir.cleanup();
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
