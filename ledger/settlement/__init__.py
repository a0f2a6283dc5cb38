"""Settlement: contribution records, contribution weights, the Settlement contract's client and the
transactions members sign against it."""
