package sign

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// Where cosign v2 stores the certificate of a keyless signature: PEM
// annotations on the .sig (or .att) layer, the leaf and the rest of its
// chain.
const (
	CertificateAnnotation = "dev.sigstore.cosign/certificate"
	ChainAnnotation       = "dev.sigstore.cosign/chain"
)

// maxChain bounds the certificates read with one signature.
const maxChain = 8

// checkChain checks that chain's leaf certifies signer's key.
func checkChain(chain []*x509.Certificate, pub crypto.PublicKey) error {
	if len(chain) == 0 {
		return nil
	}
	eq, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(pub) {
		return errors.New("the signing certificate is not for the signing key")
	}
	return nil
}

// certificateAnnotations adds chain (leaf first) to a layer's
// annotations, as cosign v2 stores a keyless signature's certificate.
func certificateAnnotations(ann map[string]string, chain []*x509.Certificate) map[string]string {
	if len(chain) == 0 {
		return ann
	}
	ann[CertificateAnnotation] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw}))
	var rest []byte
	for _, c := range chain[1:] {
		rest = append(rest, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if len(rest) > 0 {
		ann[ChainAnnotation] = string(rest)
	}
	return ann
}

// layerChain reads the certificate chain stored with a layer (nil when
// there is none or it does not parse). Nothing is verified.
func layerChain(ann map[string]string) []*x509.Certificate {
	if ann[CertificateAnnotation] == "" {
		return nil
	}
	leaf := parsePEMCertificates([]byte(ann[CertificateAnnotation]))
	if len(leaf) != 1 {
		return nil
	}
	return append(leaf, parsePEMCertificates([]byte(ann[ChainAnnotation]))...)
}

// parsePEMCertificates reads up to maxChain PEM certificates; nil when
// any block is not one.
func parsePEMCertificates(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(out) < maxChain {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil
		}
		out = append(out, c)
	}
	return out
}

// bundleChain reads the certificate (or chain) of a bundle's verification
// material; nil for a key-based bundle.
func bundleChain(pb *protobundle.Bundle) []*x509.Certificate {
	vm := pb.GetVerificationMaterial()
	var ders [][]byte
	switch c := vm.GetContent().(type) {
	case *protobundle.VerificationMaterial_Certificate:
		ders = append(ders, c.Certificate.GetRawBytes())
	case *protobundle.VerificationMaterial_X509CertificateChain:
		for _, x := range c.X509CertificateChain.GetCertificates() {
			ders = append(ders, x.GetRawBytes())
		}
	default:
		return nil
	}
	var out []*x509.Certificate
	for _, d := range ders[:min(len(ders), maxChain)] {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil
		}
		out = append(out, c)
	}
	return out
}

// chainPublicKeys is the public key of chain's leaf, for verifying the
// signature it came with.
func chainPublicKeys(chain []*x509.Certificate) []crypto.PublicKey {
	if len(chain) == 0 {
		return nil
	}
	return []crypto.PublicKey{chain[0].PublicKey}
}

// certificateMaterial is a bundle's verification material for a keyless
// signature: the leaf certificate, as cosign v3 and sigstore-go write
// bundle v0.3 (the chain's other certificates come from the trusted root).
func certificateMaterial(chain []*x509.Certificate) *protobundle.VerificationMaterial {
	return &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{
			Certificate: &protocommon.X509Certificate{RawBytes: chain[0].Raw},
		},
	}
}
