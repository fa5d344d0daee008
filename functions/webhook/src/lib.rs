//! The webhook Lambda: AdmissionReview in, one provisioning request on SQS out.
