import { describe, expect, it } from 'vitest';
import { EmsError, emsQueueRequest } from './index.ts';

describe('queue cmdlets', () => {
  it.each([
    ['Get-Queue', { action: 'get-queue', filter: {} }],
    [`Get-Queue -Filter "Status -eq 'Retry' -and MessageCount -gt 5"`, { action: 'get-queue', filter: { status: 'Retry', minMessageCount: 6 } }],
    ['Get-Queue Transit\\remote.internet_fabrikam_test', { action: 'get-queue', filter: { identity: 'Transit\\remote.internet_fabrikam_test' } }],
    ['Get-Message -Queue Transit\\Poison -ResultSize 5', { action: 'get-message', filter: { queue: 'Transit\\Poison', resultSize: 5 } }],
    [`get-message -filter "FromAddress -like '*@example.org'"`, { action: 'get-message', filter: { sender: '*@example.org' } }],
    ['Retry-Queue -Identity Transit\\remote.x', { action: 'retry-queue', identity: 'Transit\\remote.x', resubmit: false }],
    ['Retry-Queue Transit\\remote.x -Resubmit $true', { action: 'retry-queue', identity: 'Transit\\remote.x', resubmit: true }],
    ['Suspend-Queue remote.x -Confirm:$false', { action: 'suspend-queue', identity: 'remote.x' }],
    ['Resume-Queue remote.x', { action: 'resume-queue', identity: 'remote.x' }],
    ['Suspend-Message 01ABC', { action: 'suspend-message', id: '01ABC' }],
    ['Resume-Message -Identity Transit\\remote.x\\01ABC', { action: 'resume-message', id: 'Transit\\remote.x\\01ABC' }],
    ['Remove-Message 01ABC', { action: 'remove-message', id: '01ABC', withNdr: true }],
    ['Remove-Message 01ABC -WithNDR $false -Confirm:$false', { action: 'remove-message', id: '01ABC', withNdr: false }],
    ['Export-Message 01ABC -Path C:\\temp\\m.eml', { action: 'export-message', id: '01ABC', path: 'C:\\temp\\m.eml' }],
  ])('%s', (line, request) => {
    expect(emsQueueRequest(line)?.request).toEqual(request);
  });

  it('leaves other cmdlets to runEmsLine and says -Server is informational', () => {
    expect(emsQueueRequest('Get-ReceiveConnector')).toBeUndefined();
    expect(emsQueueRequest('Get-Queue -Server EX01')?.warnings).toEqual(["-Server EX01 is informational: queues are the whole cluster's"]);
  });

  it.each([
    ['Suspend-Message', /Suspend-Message: -Identity is required/],
    [`Get-Queue -Filter "Velocity -gt 1"`, /Get-Queue: -Filter: Get-Queue cannot filter on Velocity/],
    ['Export-Message 01ABC', /Export-Message: -Path is required/],
    ['Get-Queue | Get-Message', /Get-Message does not take pipeline input/],
    ['Remove-Message 01ABC -WithNDR maybe', /-WithNDR maybe is not valid: expected \$true or \$false/],
  ])('%s fails naming the parameter', (line, message) => {
    expect(() => emsQueueRequest(line)).toThrow(EmsError);
    expect(() => emsQueueRequest(line)).toThrow(message);
  });

  it('prints Get-Queue rows in its default table', () => {
    const r = emsQueueRequest('Get-Queue')!;
    const out = r.render([{ Identity: 'Transit\\Submission', DeliveryType: 'Undefined', Status: 'Ready', MessageCount: 0, NextHopDomain: 'Submission' }]);
    expect(out.text).toMatch(/^Identity\s+DeliveryType\s+Status\s+MessageCount\s+NextHopDomain/);
    expect(out.text).toMatch(/Transit\\Submission\s+Undefined\s+Ready\s+0\s+Submission/);
  });

  it('shows IncomingRate and OutgoingRate with Format-List, as Exchange does', () => {
    const out = emsQueueRequest('Get-Queue | fl')!.render([
      {
        Identity: 'Transit\\remote.x',
        DeliveryType: 'DnsConnectorDelivery',
        Status: 'Active',
        MessageCount: 1,
        NextHopDomain: 'x',
        IncomingRate: 0.5,
        OutgoingRate: 0.1,
      },
    ]);
    expect(out.text).toMatch(/^IncomingRate\s+: 0\.5$/m);
    expect(out.text).toMatch(/^OutgoingRate\s+: 0\.1$/m);
  });
});
