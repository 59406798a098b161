// Unwraps keys the way the SaaS poller does, with the JDK's own RSA-OAEP (SunJCE), so that the
// interop test proves the wrapping with an implementation independent of the server's.
//
// java Unwrap.java <pkcs8-private-key.der> (<sha1|sha256> <base64 wrappedKey>)...
// prints the hex of each plaintext on its own line.

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import java.util.HexFormat;
import javax.crypto.Cipher;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;

public class Unwrap {
    public static void main(String[] args) throws Exception {
        byte[] der = Files.readAllBytes(Path.of(args[0]));
        PrivateKey key = KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(der));
        for (int i = 1; i + 1 < args.length; i += 2) {
            Cipher cipher;
            if (args[i].equals("sha1")) {
                // The transformation the Java reference client names: SHA-1 and MGF1-SHA-1.
                cipher = Cipher.getInstance("RSA/ECB/OAEPWithSHA-1AndMGF1Padding");
                cipher.init(Cipher.DECRYPT_MODE, key);
            } else {
                // SunJCE's "OAEPWithSHA-256AndMGF1Padding" keeps MGF1-SHA-1: say SHA-256 twice.
                cipher = Cipher.getInstance("RSA/ECB/OAEPPadding");
                cipher.init(Cipher.DECRYPT_MODE, key, new OAEPParameterSpec(
                        "SHA-256", "MGF1", MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT));
            }
            byte[] plain = cipher.doFinal(Base64.getDecoder().decode(args[i + 1]));
            System.out.println(HexFormat.of().formatHex(plain));
        }
    }
}
