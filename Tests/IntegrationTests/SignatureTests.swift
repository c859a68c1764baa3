import Foundation
import JSON
import TestSupport
import XCTest

/// Every request must verify at a real verifier: moto checks SigV4 once it has an IAM user.
final class SignatureTests: XCTestCase {
    func testWrongSecret_isRejectedNamingTheAWSErrorCode_andRightSecretVerifies() throws {
        let moto = try MotoServer(extraEnvironment: ["INITIAL_NO_AUTH_ACTION_COUNT": "3"])
        // The first three calls are unauthenticated: an IAM user allowed DynamoDB, and its key.
        let made = try ChildProcess.run(
            "python3",
            [
                "-c",
                """
                import boto3, sys
                iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                                   aws_access_key_id="x", aws_secret_access_key="x")
                iam.create_user(UserName="hemstream-test")
                iam.put_user_policy(UserName="hemstream-test", PolicyName="ddb", PolicyDocument=
                    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*"}]}')
                k = iam.create_access_key(UserName="hemstream-test")["AccessKey"]
                print(k["AccessKeyId"], k["SecretAccessKey"])
                """, moto.endpoint,
            ])
        XCTAssertEqual(made.exitCode, 0, made.stderr)
        let parts = made.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let base = ["AWS_ENDPOINT_URL": moto.endpoint, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": parts[0]]

        let wrong = try Hemstream.run(["table", "verify"], environment: base.merging(["AWS_SECRET_ACCESS_KEY": "wrong"]) { $1 })
        XCTAssertEqual(wrong.exitCode, 1, wrong.stderr)
        XCTAssertEqual(wrong.stderr.split(separator: "\n").count, 1, wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("SignatureDoesNotMatch") || wrong.stderr.contains("InvalidSignatureException"), wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("403"), wrong.stderr)

        // The right secret passes verification (and the missing table is then the only finding).
        let right = try Hemstream.run(["table", "verify"], environment: base.merging(["AWS_SECRET_ACCESS_KEY": parts[1]]) { $1 })
        XCTAssertEqual(right.exitCode, 3, right.stderr)
        XCTAssertTrue(right.stdout.contains("Table: expected present, found missing"), right.stdout)
    }
}
