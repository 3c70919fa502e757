/**
 * Tokens to a pipeline of commands, each a cmdlet name and its elements (parameters and
 * values) in order. Which parameter takes a value, and what a value means, is decided later
 * by the cmdlet's binding: the parser only knows PowerShell's shapes.
 */
import { EmsError } from './errors.ts';
import type { Op, Token } from './lexer.ts';

export type Value =
  | { t: 'str'; v: string; quoted: boolean }
  | { t: 'bool'; v: boolean }
  | { t: 'null' }
  | { t: 'array'; items: Value[] }
  | { t: 'hash'; entries: Array<{ key: string; value: Value }> };
export type Element = { t: 'param'; name: string; value?: Value } | { t: 'value'; value: Value };
export type Command = { name: string; elements: Element[] };

const isOp = (tok: Token | undefined, op: Op) => tok?.t === 'op' && tok.v === op;

export function parsePipeline(tokens: readonly Token[]): Command[] {
  let i = 0;

  // A comma list is one array value: `-AuthMechanism Tls, BasicAuth`.
  function value(): Value {
    const first = primary();
    if (!isOp(tokens[i], ',')) return first;
    const items = [first];
    while (isOp(tokens[i], ',')) {
      i++;
      items.push(primary());
    }
    return { t: 'array', items };
  }

  function primary(): Value {
    const tok = tokens[i++];
    if (!tok) throw new EmsError('a value is missing at the end of the line');
    if (tok.t === 'word') return { t: 'str', v: tok.v, quoted: tok.quoted };
    if (tok.t === 'var') return tok.v === null ? { t: 'null' } : { t: 'bool', v: tok.v };
    if (isOp(tok, '@(')) {
      const items: Value[] = [];
      while (!isOp(tokens[i], ')')) {
        if (isOp(tokens[i], ';') || isOp(tokens[i], ',')) i++;
        else {
          const v = value();
          items.push(...(v.t === 'array' ? v.items : [v]));
        }
      }
      i++;
      return { t: 'array', items };
    }
    if (isOp(tok, '@{')) {
      const entries: Array<{ key: string; value: Value }> = [];
      while (!isOp(tokens[i], '}')) {
        if (isOp(tokens[i], ';')) {
          i++;
          continue;
        }
        const key = tokens[i++];
        if (key?.t !== 'word' || !isOp(tokens[i], '=')) throw new EmsError('a hashtable entry is Key=value, e.g. @{Add="10.0.0.5"; Remove="10.0.0.4"}');
        i++;
        entries.push({ key: key.v, value: value() });
      }
      i++;
      return { t: 'hash', entries };
    }
    throw new EmsError(`unexpected "${tok.raw}" where a value was expected`);
  }

  const commands: Command[] = [];
  for (;;) {
    const head = tokens[i++];
    if (head?.t !== 'word' || head.quoted) {
      throw new EmsError(
        head ? `expected a cmdlet name, found "${head.raw}"` : commands.length > 0 ? 'a command is missing after the last "|"' : 'the line is empty',
      );
    }
    const elements: Element[] = [];
    while (i < tokens.length && !isOp(tokens[i], '|')) {
      const tok = tokens[i]!;
      if (tok.t === 'param') {
        i++;
        elements.push(tok.colon ? { t: 'param', name: tok.name, value: value() } : { t: 'param', name: tok.name });
      } else if (isOp(tok, '-')) {
        throw new EmsError(`a lone "${tok.raw}": write the parameter name right after the dash (-Name)`);
      } else if (isOp(tok, ';')) {
        throw new EmsError('one command per line: ";" is not supported');
      } else {
        elements.push({ t: 'value', value: value() });
      }
    }
    commands.push({ name: head.v, elements });
    if (i >= tokens.length) return commands;
    i++; // the pipe
  }
}

/**
 * Web pages print `Get-ReceiveConnector … -ExtendedRights ms-Exch-SMTP-Submit` as
 * `Get - ReceiveConnector … - ExtendedRights ms - Exch - SMTP - Submit`. Rejoins it: a
 * cmdlet name is `Verb - Noun`; after it, `- Word` is a parameter when Word is exactly one
 * of the cmdlet's parameter names, else part of the bare word before it. Undefined when the
 * line has no lone dash, i.e. was not mangled this way.
 */
export function demangle(tokens: readonly Token[], paramsOf: (cmdlet: string) => readonly string[] | undefined): Token[] | undefined {
  if (!tokens.some((t) => isOp(t, '-'))) return undefined;
  const out: Token[] = [];
  let params: readonly string[] = [];
  let argsFrom = 0; // index in `out` of the current command's first argument
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const next = tokens[i + 1];
    const after = tokens[i + 2];
    const commandStart = out.length === 0 || isOp(out.at(-1), '|');
    if (commandStart && tok.t === 'word' && !tok.quoted) {
      const joined: Token =
        isOp(next, '-') && after?.t === 'word' && !after.quoted ? { ...tok, v: `${tok.v}-${after.v}`, raw: `${tok.raw}-${after.raw}` } : tok;
      if (joined !== tok) i += 2;
      out.push(joined);
      params = paramsOf(joined.t === 'word' ? joined.v : '') ?? [];
      argsFrom = out.length;
    } else if (isOp(tok, '-') && next?.t === 'word' && !next.quoted) {
      const prev = out.at(-1);
      const isParam = params.some((p) => p.toLowerCase() === next.v.toLowerCase());
      if (!isParam && prev?.t === 'word' && !prev.quoted && out.length > argsFrom) {
        out[out.length - 1] = { ...prev, v: `${prev.v}-${next.v}`, raw: `${prev.raw}-${next.raw}` };
      } else {
        out.push({ t: 'param', name: next.v, colon: false, raw: `-${next.v}`, space: tok.space });
      }
      i++;
    } else {
      out.push(tok);
    }
  }
  return out;
}

/** Prints tokens back as a line (normalised dashes), for telling the administrator how a line was read. */
export function renderTokens(tokens: readonly Token[]): string {
  return tokens
    .map((t, i) => (i > 0 && t.space ? ' ' : '') + (t.t === 'param' ? `-${t.name}${t.colon ? ':' : ''}` : t.raw))
    .join('')
    .trim();
}

/** A value as an administrator would recognise it in a message. */
export function showValue(v: Value): string {
  switch (v.t) {
    case 'str':
      return v.v;
    case 'bool':
      return v.v ? '$true' : '$false';
    case 'null':
      return '$null';
    case 'array':
      return v.items.map(showValue).join(',');
    case 'hash':
      return `@{${v.entries.map((e) => `${e.key}=${showValue(e.value)}`).join('; ')}}`;
  }
}
