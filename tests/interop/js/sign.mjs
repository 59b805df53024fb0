// Signs a consent message the way a browser wallet does, with ethers'
// Wallet.signMessage (EIP-191 personal_sign). Reads {"privateKey", "message"}
// as JSON on stdin; prints {"address", "signature"}.
import { Wallet } from "ethers";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { privateKey, message } = JSON.parse(input);
const wallet = privateKey ? new Wallet(privateKey) : Wallet.createRandom();
const signature = await wallet.signMessage(message);
process.stdout.write(JSON.stringify({ address: wallet.address, privateKey: wallet.privateKey, signature }));
