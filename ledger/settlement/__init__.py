"""Settlement: contribution weights of a job's parties, agreed on chain, and revenue shared by them.

One module per concept, each importing only the ones above it:

- `errors`: every settlement error, under `SettlementError` (a `secureflow.ledger.errors.LedgerError`);
- `weights`: pure maths (well-formed basis points, the weights hash, the contract's rounding);
- `approval`: the EIP-712 ContributionApproval (typed data, digest, signing, signer recovery) and
  `approval.Approval`, the one format of a signed approval (the CLI's file, the API's body);
- `contribution`: contribution inputs, the two methods, the contribution record and proposal, and the
  `contribution.WeightsProposal` parties approve;
- `client`: the Settlement contract (reads, and writes with a key this process holds);
- `transactions`: unsigned transactions prepared for a member, raw signed ones decoded, checked, sent;
- `book`: where proposals and approvals are kept (`book.ProposalBook`; the CLI's files);
- `service`: the workflow, propose / approve / prepare / submit, which both the API's routes and
  ``secureflow settle`` call, so that they apply the same rules.

Leave-one-party-out measurement runs SecretFlow, so it lives in `secureflow.compute.contribution`.
"""
