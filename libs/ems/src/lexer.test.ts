import { describe, expect, it } from 'vitest';
import { EmsError } from './errors.ts';
import { splitEmsScript, stripComments, tokenize } from './lexer.ts';
import { demangle, parsePipeline, renderTokens, type Value } from './parser.ts';

/** Tokens in a compact form: words as their value (quoted ones in «»), parameters as -Name / -Name:, the rest as written. */
const lex = (line: string) =>
  tokenize(line).map((t) =>
    t.t === 'word' ? (t.quoted ? `«${t.v}»` : t.v) : t.t === 'param' ? `-${t.name}${t.colon ? ':' : ''}` : t.t === 'var' ? `$${String(t.v)}` : t.v,
  );

/** The value of the first parameter of the first command. */
const firstValue = (line: string): Value | undefined => {
  const el = parsePipeline(tokenize(line))[0]!.elements;
  return el[1]?.t === 'value' ? el[1].value : el[0]?.t === 'param' ? el[0].value : undefined;
};

describe('tokenizer', () => {
  it.each([
    ['bare words and a quoted identity', 'Get-ReceiveConnector "Default Frontend"', ['Get-ReceiveConnector', '«Default Frontend»']],
    ['single quotes keep backslashes', `-User 'NT AUTHORITY\\Anonymous Logon'`, ['-User', '«NT AUTHORITY\\Anonymous Logon»']],
    ['typographic double quotes (seed 003)', 'Get-ReceiveConnector \u201CCRM Application\u201D', ['Get-ReceiveConnector', '«CRM Application»']],
    ['typographic single quotes', '-User \u2018NT AUTHORITY\\ANONYMOUS LOGON\u2019', ['-User', '«NT AUTHORITY\\ANONYMOUS LOGON»']],
    ['mixed straight and curly quotes close each other', '-Comment \u201Crelay"', ['-Comment', '«relay»']],
    ['a doubled quote stands for itself', `-Comment 'it''s' "say ""hi"""`, ['-Comment', "«it's»", '«say "hi"»']],
    ['backtick escapes in double quotes', '-Comment "a`"b`tc"', ['-Comment', '«a"b\tc»']],
    ['en dash parameter (seed 000)', 'Set-ReceiveConnector \u2013ProtocolLoggingLevel Verbose', ['Set-ReceiveConnector', '-ProtocolLoggingLevel', 'Verbose']],
    ['em dash parameter with a colon value', '\u2014Enabled:$false', ['-Enabled:', '$false']],
    ['-Param:value', '-Bindings:0.0.0.0:25 -Confirm:$false', ['-Bindings:', '0.0.0.0:25', '-Confirm:', '$false']],
    ['$true, $false, $null in any case', '$TRUE $False $null', ['$true', '$false', '$null']],
    ['a comma list', '-AuthMechanism Tls,BasicAuth, Integrated', ['-AuthMechanism', 'Tls', ',', 'BasicAuth', ',', 'Integrated']],
    ['quoted items of a list', '-RemoteIPRanges "10.0.0.1","10.0.0.0/24"', ['-RemoteIPRanges', '«10.0.0.1»', ',', '«10.0.0.0/24»']],
    ['an array', '@("a", \'b\')', ['@(', '«a»', ',', '«b»', ')']],
    [
      'a hashtable: = and ; are operators only inside',
      '@{Add="x","y"; Remove=z} a=b',
      ['@{', 'Add', '=', '«x»', ',', '«y»', ';', 'Remove', '=', 'z', '}', 'a=b'],
    ],
    ['a pipeline', 'Get-ReceiveConnector | fl', ['Get-ReceiveConnector', '|', 'fl']],
    ['a UPN and a negative number stay words', '-User relay1@contoso.test -1', ['-User', 'relay1@contoso.test', '-1']],
    ['a lone dash is an operator (mangled text)', 'Get - ReceiveConnector', ['Get', '-', 'ReceiveConnector']],
    ['backtick-newline continues the line', 'Get-ReceiveConnector `\n  "x"', ['Get-ReceiveConnector', '«x»']],
  ])('%s', (_name, line, tokens) => {
    expect(lex(line)).toEqual(tokens);
  });

  it.each([
    ['a variable', 'Set-ReceiveConnector $rc', /variables are not supported \(\$rc\)/],
    ['a variable inside double quotes', '-Banner "220 $env"', /variables are not expanded/],
    ['a subexpression', '-Identity (Get-ReceiveConnector x)', /subexpressions are not supported/],
    ['a script block', 'Get-ReceiveConnector | Where { $_.Enabled }', /script blocks/],
    ['an unterminated string', 'Get-ReceiveConnector "Default', /missing closing quote/],
    ['an unclosed hashtable', '-Bindings @{Add="x"', /missing closing "}"/],
  ])('refuses %s', (_name, line, message) => {
    expect(() => tokenize(line)).toThrow(EmsError);
    expect(() => tokenize(line)).toThrow(message);
  });

  it('strips comments outside strings only', () => {
    expect(stripComments('Get-ReceiveConnector "#1" # the first').code.trim()).toBe('Get-ReceiveConnector "#1"');
    expect(stripComments('a <# block #> b').code).toBe('a   b');
    expect(stripComments('-Banner "unclosed').open).toBe(true);
  });
});

describe('parser', () => {
  it.each<[string, string, Value]>([
    [
      'a comma list is one array',
      '-AuthMechanism Tls, BasicAuth',
      {
        t: 'array',
        items: [
          { t: 'str', v: 'Tls', quoted: false },
          { t: 'str', v: 'BasicAuth', quoted: false },
        ],
      },
    ],
    [
      '@( ) flattens into one array',
      '-Bindings @("0.0.0.0:25"; "[::]:25")',
      {
        t: 'array',
        items: [
          { t: 'str', v: '0.0.0.0:25', quoted: true },
          { t: 'str', v: '[::]:25', quoted: true },
        ],
      },
    ],
    [
      'a hashtable of Add and Remove',
      '-RemoteIPRanges @{Add="10.0.0.5","10.0.0.6"; Remove="10.0.0.4"}',
      {
        t: 'hash',
        entries: [
          {
            key: 'Add',
            value: {
              t: 'array',
              items: [
                { t: 'str', v: '10.0.0.5', quoted: true },
                { t: 'str', v: '10.0.0.6', quoted: true },
              ],
            },
          },
          { key: 'Remove', value: { t: 'str', v: '10.0.0.4', quoted: true } },
        ],
      },
    ],
    ['a colon value', '-Confirm:$false', { t: 'bool', v: false }],
    ['$null', '-Banner $null', { t: 'null' }],
  ])('%s', (_name, line, value) => {
    expect(firstValue(`Set-X ${line}`)).toEqual(value);
  });

  it('splits a pipeline into commands with their elements in order', () => {
    const [get, add] = parsePipeline(tokenize('Get-ReceiveConnector "Relay E15MB1" | Add-ADPermission -User x -Deny'));
    expect(get).toEqual({ name: 'Get-ReceiveConnector', elements: [{ t: 'value', value: { t: 'str', v: 'Relay E15MB1', quoted: true } }] });
    expect(add!.elements.map((e) => (e.t === 'param' ? `-${e.name}` : 'value'))).toEqual(['-User', 'value', '-Deny']);
  });

  it.each([
    ['an empty line', '', /the line is empty/],
    ['a trailing pipe', 'Get-ReceiveConnector |', /a command is missing after the last "\|"/],
    ['a quoted cmdlet name', '"Get-ReceiveConnector"', /expected a cmdlet name/],
    ['two commands on one line', 'Get-ReceiveConnector; Get-SendConnector', /one command per line/],
    ['a lone dash', 'Get-ReceiveConnector - Identity x', /a lone "-"/],
  ])('refuses %s', (_name, line, message) => {
    expect(() => parsePipeline(tokenize(line))).toThrow(message);
  });

  it('rejoins web-mangled hyphens using the cmdlets’ parameter names', () => {
    const params = (cmdlet: string) =>
      cmdlet === 'Add-ADPermission' ? ['Identity', 'User', 'ExtendedRights', 'Deny'] : cmdlet === 'Get-ReceiveConnector' ? ['Identity'] : undefined;
    const line =
      'Get - ReceiveConnector "default frontend*" | Add - ADPermission - User "contoso\\relay accounts" - ExtendedRights ms - Exch - SMTP - Submit, ms - Exch - Accept - Headers - Routing';
    expect(renderTokens(demangle(tokenize(line), params)!)).toBe(
      'Get-ReceiveConnector "default frontend*" | Add-ADPermission -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit, ms-Exch-Accept-Headers-Routing',
    );
    expect(demangle(tokenize('Get-ReceiveConnector x'), params)).toBeUndefined();
  });
});

describe('splitEmsScript', () => {
  it.each([
    [
      'comments and blank lines',
      '# relay setup\n\nGet-ReceiveConnector  # all of them\n\n<# block #>\nGet-SendConnector\n',
      ['Get-ReceiveConnector', 'Get-SendConnector'],
    ],
    [
      'backtick continuation',
      'Set-ReceiveConnector "Relay" `\n  -Enabled $false `\n  -Comment "x"',
      ['Set-ReceiveConnector "Relay" -Enabled $false -Comment "x"'],
    ],
    [
      'a trailing pipe continues',
      'Get-ReceiveConnector "x" |\n\n  Set-ReceiveConnector -Enabled $false\nGet-SendConnector',
      ['Get-ReceiveConnector "x" | Set-ReceiveConnector -Enabled $false', 'Get-SendConnector'],
    ],
    ['a trailing comma continues a list', '-AuthMechanism Tls,\n  BasicAuth', ['-AuthMechanism Tls, BasicAuth']],
    [
      'a multi-line hashtable',
      'Set-ReceiveConnector x -RemoteIPRanges @{\n  Add="10.0.0.1"\n  Remove="10.0.0.2" # old printer\n}',
      ['Set-ReceiveConnector x -RemoteIPRanges @{\n  Add="10.0.0.1"\n  Remove="10.0.0.2" \n}'],
    ],
    ['a comment character inside a string is not a comment', 'Set-ReceiveConnector x -Comment "room #4"', ['Set-ReceiveConnector x -Comment "room #4"']],
    [
      'a prompt and parameters wrapped onto the next lines (seed 001)',
      '[PS] C:\\>New-ReceiveConnector -Name "SMTP Relay EXCH01" \n-Server EXCH01 -Custom \n-Bindings 0.0.0.0:25\n\nPS C:\\Users\\admin> Get-ReceiveConnector',
      ['New-ReceiveConnector -Name "SMTP Relay EXCH01" -Server EXCH01 -Custom -Bindings 0.0.0.0:25', 'Get-ReceiveConnector'],
    ],
    [
      'a lone dash at the end of a line continues (seed 000)',
      'Add - ADPermission - ExtendedRights ms -\n    Exch - SMTP - Submit',
      ['Add - ADPermission - ExtendedRights ms - Exch - SMTP - Submit'],
    ],
    ['Windows line ends', 'Get-ReceiveConnector |\r\n fl\r\n', ['Get-ReceiveConnector | fl']],
  ])('%s', (_name, text, lines) => {
    expect(splitEmsScript(text)).toEqual(lines);
  });
});
