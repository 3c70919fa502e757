import { describe, expect, it } from 'vitest';
import { emsDkimRequest, runEmsLine } from './run.ts';
import { contoso } from './fixture.ts';

describe('DKIM cmdlets', () => {
  it('bind into requests for the cluster, with Exchange Online parameters', () => {
    expect(emsDkimRequest('New-DkimSigningConfig -DomainName contoso.com -Enabled $true -KeySize 2048')?.request).toEqual({
      op: 'new',
      domain: 'contoso.com',
      enabled: true,
      keySize: 2048,
    });
    expect(emsDkimRequest('New-DkimSigningConfig contoso.com -Enabled $false -Algorithm ed25519-sha256')?.request).toEqual({
      op: 'new',
      domain: 'contoso.com',
      enabled: false,
      algorithm: 'ed25519-sha256',
    });
    expect(emsDkimRequest('Rotate-DkimSigningConfig -Identity contoso.com -KeySize 4096')?.request).toEqual({
      op: 'rotate',
      domain: 'contoso.com',
      keySize: 4096,
    });
    expect(emsDkimRequest('Set-DkimSigningConfig contoso.com -Enabled $false')?.request).toEqual({ op: 'set', domain: 'contoso.com', enabled: false });
    expect(emsDkimRequest('Get-DkimSigningConfig')?.request).toEqual({ op: 'get' });
    expect(emsDkimRequest('Get-ReceiveConnector')).toBeUndefined();
  });

  it('refuses what Exchange Online refuses, naming the parameter', () => {
    expect(() => emsDkimRequest('New-DkimSigningConfig -DomainName contoso.com')).toThrow(/-Enabled is required/);
    expect(() => emsDkimRequest('New-DkimSigningConfig -DomainName contoso.com -Enabled $true -KeySize 512')).toThrow(
      /-KeySize must be 1024, 2048, 3072 or 4096/,
    );
    expect(() => emsDkimRequest('Set-DkimSigningConfig contoso.com')).toThrow(/-Enabled/);
    expect(() => emsDkimRequest('Rotate-DkimSigningConfig')).toThrow(/-Identity is required/);
    // Run against the configuration alone, they say where they run.
    expect(() => runEmsLine('Get-DkimSigningConfig', contoso())).toThrow(/run it with transitctl ems/);
  });

  it('prints rows as Get-DkimSigningConfig does', () => {
    const r = emsDkimRequest('Get-DkimSigningConfig')!;
    const text = r.render([{ Domain: 'contoso.com', Enabled: true, Status: 'Valid', Selector: 'selector1', Selector1Record: 'x' }]).text;
    expect(text).toBe('Domain      Enabled Status Selector\n------      ------- ------ --------\ncontoso.com True    Valid  selector1');
  });
});
